// Live viewer for one grant: the tail WebSocket on this page's own origin,
// rendered in batches on animation frames with the DOM capped, follow mode,
// pause with a buffer, level filter, text/regex search with highlight, and
// notices for drops, gaps, redactions and the stream's end.
//
// Log lines are untrusted text: every part of an entry is placed with
// textContent or text nodes, and highlights split text nodes into <mark>
// elements, so nothing in a line can become markup.
import { api, boot, el, $, clear, errorText, toast, fmtLeft } from "./app.js";
import { LEVELS, attrsText, lineEl as renderLine } from "./logline.js";

const MAX_LINES = 5000;      // DOM and re-render buffer cap
const MAX_PAUSED = 50000;    // entries held while paused
const CLOSE_REASONS = {
  4001: "expired", 4002: "revoked", 4003: "shutdown", 4004: "limit_reached", 4005: "too_slow", 4006: "backend_unavailable",
};
const END_TEXT = {
  expired: "The grant expired.",
  revoked: "The grant was revoked.",
  shutdown: "The server is restarting; reconnect to resume where you left off.",
  limit_reached: "Too many live tails are open for you or this stream.",
  too_slow: "This viewer fell too far behind the stream.",
  backend_unavailable: "The log backend is unavailable.",
};

const v = {
  id: "",
  grant: null,
  ws: null,
  ended: false,
  lastSeq: 0,
  received: 0,
  shownCount: 0,
  redactions: 0,
  dropped: 0,
  paused: false,
  pausedBuf: [],
  pausedOverflow: 0,
  queue: [],
  entries: [],          // the last MAX_LINES entries, for re-rendering on filter change
  follow: true,
  unseen: 0,
  scheduled: false,
  minLevel: 0,
  search: null,         // RegExp with the g flag, or null
  onlyMatches: false,
  lastRateCount: 0,
};

let log;

function levelRank(l) {
  return LEVELS[String(l || "").toLowerCase()] || 0;
}

function matches(e) {
  if (!v.search) return true;
  v.search.lastIndex = 0;
  if (v.search.test(e.message || "")) return true;
  v.search.lastIndex = 0;
  return v.search.test(attrsText(e));
}

function visible(e) {
  if (v.minLevel && levelRank(e.level) < v.minLevel) return false;
  if (v.onlyMatches && v.search && !matches(e)) return false;
  return true;
}

// highlight appends text to node, wrapping matches of the search in <mark>
// elements. Only text nodes are created from the text.
function highlight(node, text) {
  const re = v.search;
  if (!re || !text) {
    node.textContent = text;
    return;
  }
  re.lastIndex = 0;
  let at = 0;
  let m;
  let guard = 0;
  while ((m = re.exec(text)) !== null && guard++ < 1000) {
    if (m[0] === "") { re.lastIndex++; continue; }
    if (m.index > at) node.append(document.createTextNode(text.slice(at, m.index)));
    const mark = document.createElement("mark");
    mark.textContent = m[0];
    node.append(mark);
    at = m.index + m[0].length;
  }
  if (at < text.length) node.append(document.createTextNode(text.slice(at)));
}

function lineEl(e) {
  return renderLine(e, highlight);
}

function atBottom() {
  return log.scrollHeight - log.scrollTop - log.clientHeight < 24;
}

function scrollToBottom() {
  log.scrollTop = log.scrollHeight;
}

function trimDOM() {
  let excess = log.childElementCount - MAX_LINES;
  while (excess-- > 0) log.firstElementChild.remove();
}

function schedule() {
  if (v.scheduled) return;
  v.scheduled = true;
  requestAnimationFrame(flush);
  // Frames stop in background tabs; the timer keeps the buffer bounded.
  setTimeout(flush, 500);
}

function flush() {
  if (!v.scheduled) return;
  v.scheduled = false;
  let batch = v.queue;
  v.queue = [];
  if (batch.length === 0) return;
  if (batch.length > MAX_LINES) batch = batch.slice(batch.length - MAX_LINES);
  for (const e of batch) v.entries.push(e);
  if (v.entries.length > MAX_LINES) v.entries.splice(0, v.entries.length - MAX_LINES);
  const frag = document.createDocumentFragment();
  let added = 0;
  for (const e of batch) {
    if (visible(e)) { frag.append(lineEl(e)); added++; }
  }
  log.append(frag);
  trimDOM();
  if (v.follow) scrollToBottom();
  else if (added) {
    v.unseen += added;
    const b = $("v-follow");
    b.hidden = false;
    b.textContent = `${v.unseen} new line${v.unseen === 1 ? "" : "s"} — follow ↓`;
  }
  updateStats();
}

function rerender() {
  const frag = document.createDocumentFragment();
  for (const e of v.entries) if (visible(e)) frag.append(lineEl(e));
  clear(log).append(frag);
  if (v.follow) scrollToBottom();
  updateStats();
}

function updateStats() {
  $("v-count").textContent = String(v.received);
  $("v-shown").textContent = String(log.childElementCount);
  $("v-redactions").textContent = String(v.redactions);
  $("v-dropped").textContent = String(v.dropped);
  $("v-buffered").hidden = !v.paused;
  $("v-buffered-n").textContent = String(v.pausedBuf.length) + (v.pausedOverflow ? ` (+${v.pausedOverflow} discarded)` : "");
}

function notice(kind, text) {
  const list = $("v-notices");
  list.append(el("li", { class: "notice " + kind },
    el("time", { text: new Date().toLocaleTimeString() }), " ", el("strong", { text: kind }), " ", text));
  while (list.children.length > 20) list.firstElementChild.remove();
}

function onEntries(list) {
  for (const e of list) {
    v.received++;
    if (e.seq > v.lastSeq) v.lastSeq = e.seq;
    if (e.redactions) for (const n of Object.values(e.redactions)) v.redactions += n;
    if (v.paused) {
      v.pausedBuf.push(e);
    } else {
      v.queue.push(e);
    }
  }
  if (v.queue.length > 2 * MAX_LINES) v.queue.splice(0, v.queue.length - MAX_LINES);
  // Trim the pause buffer in chunks: shifting one entry at a time would copy
  // the whole buffer for every line at high rates.
  if (v.pausedBuf.length > MAX_PAUSED + 1000) {
    const over = v.pausedBuf.length - MAX_PAUSED;
    v.pausedBuf.splice(0, over);
    v.pausedOverflow += over;
  }
  if (v.paused) updateStats();
  else schedule();
}

function setState(text, cls) {
  const s = $("v-state");
  s.textContent = text;
  s.className = "badge state-" + (cls || text);
}

function setExpires(t) {
  const c = $("v-countdown");
  if (v.ended || !c) return;
  c.dataset.expires = t;
  c.textContent = fmtLeft(new Date(t).getTime() - Date.now());
}

function showEnd(reason, message) {
  v.ended = true;
  setState("ended", "ended");
  clear($("v-expiry")).append(el("strong", { id: "v-countdown", text: reason === "expired" ? "expired" : "ended" }));
  // The server's message says why in full; the fixed text covers a close
  // without one.
  const said = message ? message.charAt(0).toUpperCase() + message.slice(1) : (END_TEXT[reason] || "");
  const b = $("v-end");
  clear(b).append(
    el("strong", { text: `Stream ended: ${reason}. ` }),
    el("span", { class: "detail", text: said + (/[.!?]$/.test(said) ? " " : ". ") }),
    el("a", { href: "/", text: "Back to your access" }));
  b.className = "banner end reason-" + reason;
  b.hidden = false;
  for (const id of ["v-revoke", "v-revoke-form", "v-extend", "v-extend-form"]) $(id).hidden = true;
  $("v-reconnect").disabled = !(reason === "shutdown" || reason === "too_slow" || reason === "backend_unavailable" || reason === "connection_lost");
  flush();
}

function tailURL(backfill) {
  const proto = location.protocol === "https:" ? "wss:" : "ws:";
  const q = new URLSearchParams();
  if (v.lastSeq > 0) q.set("after", String(v.lastSeq));
  else if (backfill > 0) q.set("lines", String(backfill));
  const qs = q.toString();
  return `${proto}//${location.host}/api/v1/grants/${encodeURIComponent(v.id)}/tail${qs ? "?" + qs : ""}`;
}

function connect() {
  if (v.ws) { v.ws.onclose = null; v.ws.close(1000); v.ws = null; }
  v.ended = false;
  $("v-end").hidden = true;
  $("v-revoke").hidden = false;
  $("v-extend").hidden = false;
  if (!$("v-countdown").classList.contains("countdown")) {
    clear($("v-expiry")).append("expires in ", el("strong", { id: "v-countdown", class: "countdown", text: "–" }));
  }
  setState("connecting");
  let backfill = parseInt($("v-backfill").value, 10) || 0;
  if (v.grant && v.grant.max_lookback === "0s") backfill = 0;
  const ws = new WebSocket(tailURL(Math.min(Math.max(backfill, 0), 10000)));
  v.ws = ws;
  let endSeen = false;
  ws.onmessage = (ev) => {
    let m;
    try { m = JSON.parse(ev.data); } catch { return; }
    switch (m.type) {
      case "entries": onEntries(m.entries || []); break;
      case "subscribed":
        setState(v.paused ? "paused" : "live", v.paused ? "paused" : "live");
        if (m.expires_at) setExpires(m.expires_at);
        break;
      case "dropped":
        v.dropped += m.count || 0;
        notice("dropped", `${m.count} line(s) dropped (seq ${m.from_seq}–${m.to_seq}): ${m.reason || "viewer behind"}`);
        updateStats();
        break;
      case "gap":
        notice("gap", `lines ${m.from_seq}–${m.to_seq} are no longer available (${m.reason || "gap"})`);
        break;
      case "notice":
        if (m.code === "extended" && m.expires_at) setExpires(m.expires_at);
        notice(m.code || "notice", m.message || "");
        break;
      case "end":
        endSeen = true;
        flush();
        showEnd(m.reason || "ended", m.message || "");
        break;
    }
  };
  ws.onclose = (ev) => {
    if (v.ws === ws) v.ws = null;
    if (endSeen) return;
    const reason = CLOSE_REASONS[ev.code];
    if (reason) { showEnd(reason, ev.reason || ""); return; }
    explainClose();
  };
}

// explainClose asks the API why a tail closed without an end message (the
// browser hides an upgrade's HTTP status).
async function explainClose() {
  try {
    const g = await api("GET", `/api/v1/grants/${encodeURIComponent(v.id)}`);
    if (g.state !== "active") { showEnd(g.state, g.revoke_reason ? "Reason: " + g.revoke_reason : ""); return; }
  } catch (e) {
    showEnd("connection_lost", errorText(e));
    return;
  }
  showEnd("connection_lost", "The connection dropped. Reconnect to resume after the last line received.");
}

function setSearch() {
  const text = $("v-search").value;
  const err = $("v-search-error");
  err.textContent = "";
  if (!text) v.search = null;
  else if ($("v-regex").checked) {
    try { v.search = new RegExp(text, "gi"); } catch (e) { err.textContent = "Invalid regular expression: " + e.message; v.search = null; }
  } else {
    v.search = new RegExp(text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"), "gi");
  }
  v.onlyMatches = $("v-only").checked;
  rerender();
}

function togglePause() {
  v.paused = !v.paused;
  const b = $("v-pause");
  b.setAttribute("aria-pressed", String(v.paused));
  b.textContent = v.paused ? "Resume" : "Pause";
  if (!v.paused) {
    for (const e of v.pausedBuf) v.queue.push(e);
    v.pausedBuf = [];
    v.pausedOverflow = 0;
    if (!v.ended) setState("live");
    schedule();
  } else if (!v.ended) {
    setState("paused");
  }
  updateStats();
}

function wire() {
  log = $("log");
  log.addEventListener("scroll", () => {
    v.follow = atBottom();
    if (v.follow) { v.unseen = 0; $("v-follow").hidden = true; }
  });
  $("v-follow").addEventListener("click", () => {
    v.follow = true;
    v.unseen = 0;
    $("v-follow").hidden = true;
    scrollToBottom();
    log.focus();
  });
  $("v-controls").addEventListener("submit", (ev) => ev.preventDefault());
  $("v-level").addEventListener("change", () => { v.minLevel = levelRank($("v-level").value); rerender(); });
  let t = 0;
  $("v-search").addEventListener("input", () => { clearTimeout(t); t = setTimeout(setSearch, 150); });
  $("v-regex").addEventListener("change", setSearch);
  $("v-only").addEventListener("change", setSearch);
  $("v-pause").addEventListener("click", togglePause);
  // After Clear, a reconnect loads the backfill again instead of resuming.
  $("v-clear").addEventListener("click", () => { v.entries = []; v.lastSeq = 0; clear(log); updateStats(); });
  $("v-reconnect").addEventListener("click", connect);
  $("v-revoke").addEventListener("click", () => {
    const f = $("v-revoke-form");
    f.hidden = !f.hidden;
    if (!f.hidden) $("v-revoke-reason").focus();
  });
  $("v-revoke-cancel").addEventListener("click", () => { $("v-revoke-form").hidden = true; });
  $("v-extend").addEventListener("click", () => {
    const f = $("v-extend-form");
    f.hidden = !f.hidden;
    if (!f.hidden) $("v-extend-duration").focus();
  });
  $("v-extend-cancel").addEventListener("click", () => { $("v-extend-form").hidden = true; });
  $("v-extend-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const duration = $("v-extend-duration").value.trim();
    const reason = $("v-extend-reason").value.trim();
    if (!duration) { $("v-extend-duration").focus(); return; }
    if (!reason) { $("v-extend-reason").focus(); return; }
    $("v-extend-confirm").disabled = true;
    try {
      const r = await api("POST", `/api/v1/grants/${encodeURIComponent(v.id)}/extend`, { duration, reason });
      if (r.state === "pending") notice("extension", `asked for ${r.duration} more; waiting for ${r.approvals_needed} approval(s)`);
      else if (r.state === "denied") notice("extension", "denied: " + ((r.decision && r.decision.reasons) || []).join("; "));
      else toast(`Extension ${r.state}.`);
      $("v-extend-form").hidden = true;
    } catch (e) {
      toast("Could not extend: " + errorText(e), "bad");
    } finally {
      $("v-extend-confirm").disabled = false;
    }
  });
  $("v-revoke-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const reason = $("v-revoke-reason").value.trim();
    if (!reason) { $("v-revoke-reason").focus(); return; }
    $("v-revoke-confirm").disabled = true;
    try {
      await api("POST", `/api/v1/grants/${encodeURIComponent(v.id)}/revoke`, { reason });
      toast("Grant revoked.");
    } catch (e) {
      toast("Could not revoke: " + errorText(e), "bad");
    } finally {
      $("v-revoke-confirm").disabled = false;
    }
  });
  setInterval(() => {
    $("v-rate").textContent = String(v.received - v.lastRateCount);
    v.lastRateCount = v.received;
  }, 1000);
}

async function main() {
  if (!(await boot())) return;
  v.id = document.getElementById("main").dataset.id;
  wire();
  try {
    v.grant = await api("GET", `/api/v1/grants/${encodeURIComponent(v.id)}`);
  } catch (e) {
    showEnd("unavailable", errorText(e));
    return;
  }
  $("v-stream").textContent = `${v.grant.service}/${v.grant.env}`;
  document.title = `${v.grant.service}/${v.grant.env} · live logs`;
  if (v.grant.max_lookback === "0s") {
    $("v-backfill").value = "0";
    $("v-backfill").disabled = true;
  }
  setExpires(v.grant.expires_at);
  if (v.grant.state !== "active") {
    showEnd(v.grant.state, v.grant.revoke_reason ? "Reason: " + v.grant.revoke_reason : "");
    return;
  }
  connect();
}

main();
