// One log entry as a line: shared by the live viewer and the replay on the
// security page, so a replay looks exactly as the viewer saw it.
//
// Log lines are untrusted text: every part is placed with textContent or
// text nodes (mark() may split text into <mark> elements, never markup).

export const LEVELS = { trace: 1, debug: 2, info: 3, warn: 4, error: 5, fatal: 6 };

export function attrsText(e) {
  const a = e.attributes;
  if (!a) return "";
  return Object.keys(a).map((k) => `${k}=${a[k]}`).join(" ");
}

export function fmtClock(t) {
  const d = new Date(t);
  if (isNaN(d)) return String(t || "");
  const p = (n, w = 2) => String(n).padStart(w, "0");
  return `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}.${p(d.getMilliseconds(), 3)}`;
}

const plain = (node, text) => { node.textContent = text; };

// lineEl renders entry e; mark(node, text) fills a text part (default: plain text).
export function lineEl(e, mark = plain) {
  const lvl = String(e.level || "").toLowerCase();
  const line = document.createElement("div");
  line.className = "line lvl-" + (LEVELS[lvl] ? lvl : "other");
  line.dataset.seq = String(e.seq);
  const ts = document.createElement("span");
  ts.className = "ts";
  ts.textContent = fmtClock(e.time);
  ts.title = String(e.time || "");
  const lv = document.createElement("span");
  lv.className = "lvl";
  lv.textContent = lvl || "-";
  const msg = document.createElement("span");
  msg.className = "msg";
  mark(msg, String(e.message ?? ""));
  line.append(ts, lv, msg);
  const at = attrsText(e);
  if (at) {
    const a = document.createElement("span");
    a.className = "attrs";
    mark(a, at);
    line.append(a);
  }
  if (e.redactions) {
    const n = Object.values(e.redactions).reduce((x, y) => x + y, 0);
    const r = document.createElement("span");
    r.className = "redacted";
    r.textContent = `redacted ×${n}`;
    r.title = "masked at ingest: " + Object.keys(e.redactions).join(", ");
    line.append(r);
  }
  if (e.truncated) {
    const t = document.createElement("span");
    t.className = "redacted";
    t.textContent = "truncated";
    line.append(t);
  }
  return line;
}
