// Security: audit search with paging and export links, a grant's timeline,
// open break-glass reviews to close, and the integrity checkpoint.
import { api, boot, el, $, clear, facts, badge, timeEl, toast, errorText, who, APIError } from "./app.js";
import { lineEl } from "./logline.js";

const FIELDS = ["actor", "action", "outcome", "service", "env", "grant", "since", "until", "limit"];
const pages = { cursors: [""], index: 0 };

function actorText(a) {
  if (!a) return "";
  if (a.kind === "user") return a.email || a.name || a.subject || "user";
  if (a.kind === "source") return "source " + (a.id || a.name || "");
  return a.subject || a.kind || "";
}

function targetNode(t) {
  if (!t) return "";
  const parts = [];
  if (t.service) parts.push(el("code", { text: `${t.service}/${t.env || ""}` }));
  if (t.grant_id) {
    parts.push(" grant ", el("a", { href: "#timeline-h", class: "grant-link", text: t.grant_id, dataset: { grant: t.grant_id },
      on: { click: (ev) => { ev.preventDefault(); showTimeline(t.grant_id); } } }));
  } else if (t.request_id) {
    parts.push(" ", el("a", { href: `/requests/${encodeURIComponent(t.request_id)}`, text: t.request_id }));
  }
  if (t.review_id) parts.push(" review " + t.review_id);
  if (t.source_id) parts.push(" source " + t.source_id);
  return parts;
}

function detailsText(ev) {
  const bits = [];
  if (ev.reason) bits.push(ev.reason);
  const d = ev.details || {};
  for (const k of ["detail", "count", "state", "duration", "entries", "bytes", "dropped", "redactions", "close_reason", "counts_from", "spooled_at", "results", "format", "auto_approved", "break_glass"]) {
    if (d[k] !== undefined && d[k] !== "" && d[k] !== null) bits.push(`${k}=${typeof d[k] === "object" ? JSON.stringify(d[k]) : d[k]}`);
  }
  return bits.join(" · ");
}

function query() {
  const q = new URLSearchParams();
  for (const f of FIELDS) {
    const val = $("q-" + f).value.trim();
    if (val) q.set(f, val);
  }
  return q;
}

function updateExports(q) {
  const x = new URLSearchParams(q);
  x.delete("limit");
  x.delete("cursor");
  for (const fmt of ["ndjson", "csv"]) {
    x.set("format", fmt);
    $("export-" + fmt).href = "/api/v1/audit/export?" + x.toString();
  }
}

async function search() {
  const q = query();
  updateExports(q);
  const cursor = pages.cursors[pages.index];
  if (cursor) q.set("cursor", cursor);
  const status = $("search-status");
  status.textContent = "Searching…";
  let data;
  try {
    data = await api("GET", "/api/v1/audit?" + q.toString());
  } catch (e) {
    status.textContent = "Search failed: " + errorText(e);
    return;
  }
  const items = data.items || [];
  const tbody = clear($("results").tBodies[0]);
  for (const ev of items) {
    tbody.append(el("tr", { dataset: { action: ev.action, seq: ev.seq } },
      el("td", { class: "num", text: ev.seq }),
      el("td", {}, timeEl(ev.time)),
      el("td", {}, el("code", { text: ev.action })),
      el("td", { text: actorText(ev.actor) }),
      el("td", {}, badge(ev.outcome)),
      el("td", {}, targetNode(ev.target)),
      el("td", { class: "wrap", text: detailsText(ev) })));
  }
  $("results").hidden = items.length === 0;
  status.textContent = items.length ? `${items.length} event(s) on this page.` : "No event matches.";
  if (data.next_cursor) pages.cursors[pages.index + 1] = data.next_cursor;
  else pages.cursors.length = pages.index + 1;
  $("page-prev").disabled = pages.index === 0;
  $("page-next").disabled = !data.next_cursor;
  $("page-n").textContent = `page ${pages.index + 1}`;
}

async function showTimeline(id) {
  $("t-grant").value = id;
  const status = $("timeline-status");
  const list = clear($("timeline"));
  clear($("timeline-summary"));
  status.textContent = "Loading…";
  let data;
  try {
    data = await api("GET", `/api/v1/grants/${encodeURIComponent(id)}/timeline`);
  } catch (e) {
    status.textContent = "Timeline failed: " + errorText(e);
    return;
  }
  const g = data.grant;
  const r = data.request;
  facts($("timeline-summary"), [
    ["Grant", el("code", { text: g.id })],
    ["Holder", `${who(g.holder)}${g.holder.email ? " <" + g.holder.email + ">" : ""}`],
    ["Stream", el("code", { text: `${g.service}/${g.env}` })],
    ["State", badge(g.state)],
    ["Issued", timeEl(g.issued_at)],
    ["Expires", timeEl(g.expires_at)],
    ["Ended", g.ended_at ? timeEl(g.ended_at) : ""],
    ["Revoked by", g.revoked_by ? `${who(g.revoked_by)}: ${g.revoke_reason || ""}` : ""],
    ["Reason asked", r ? r.reason : ""],
    ["Break-glass", g.break_glass ? "yes" : ""],
  ]);
  for (const ev of data.events || []) {
    list.append(el("li", { class: "outcome-" + ev.outcome, dataset: { action: ev.action } },
      timeEl(ev.time), " ", el("code", { class: "action", text: ev.action }), " ", badge(ev.outcome), " ",
      el("span", { text: actorText(ev.actor) }), " ",
      el("span", { class: "muted", text: detailsText(ev) }),
      ev.action === "stream.closed" && ev.details && ev.details.view_id
        ? el("button", { type: "button", class: "replay-btn", text: "Replay", dataset: { view: ev.details.view_id },
            on: { click: () => pickReplay(ev.details.view_id) } })
        : ""));
  }
  status.textContent = `${(data.events || []).length} event(s).`;
  $("timeline-h").scrollIntoView({ block: "start" });
}

// pickReplay fills the replay form with a view; a reason is still asked for.
function pickReplay(viewID) {
  $("r-view").value = viewID;
  $("replay-h").scrollIntoView({ block: "start" });
  $("r-reason").focus();
}

// replay shows a closed view as its viewer saw it, rebuilt by the gateway
// from the backlog, with whether it matches the digest the view recorded.
async function replay(viewID, reason) {
  const status = $("replay-status");
  const log = clear($("replay-log"));
  const verdict = clear($("replay-verdict"));
  status.textContent = "Replaying…";
  let resp;
  try {
    resp = await fetch(`/api/v1/views/${encodeURIComponent(viewID)}/replay?reason=${encodeURIComponent(reason)}`,
      { credentials: "same-origin", headers: { Accept: "application/x-ndjson" } });
  } catch (e) {
    status.textContent = "Replay failed: the gateway is unreachable";
    return;
  }
  const text = await resp.text();
  if (!resp.ok) {
    let msg = `HTTP ${resp.status}`;
    try { msg = JSON.parse(text).error || msg; } catch { /* not JSON */ }
    status.textContent = "Replay refused: " + msg;
    return;
  }
  let result = null;
  let n = 0;
  for (const raw of text.split("\n")) {
    if (!raw) continue;
    let f;
    try { f = JSON.parse(raw); } catch { continue; }
    if (f.type === "entries") {
      for (const e of f.entries || []) { log.append(lineEl(e)); n++; }
    } else if (f.type === "replay") {
      result = f;
    }
  }
  if (!result) {
    status.textContent = `Replay ended early after ${n} entries: not verified.`;
    verdict.append(el("span", { class: "badge state-denied", text: "not verified" }));
    return;
  }
  verdict.append(el("span", { class: "badge " + (result.verified ? "state-approved" : "state-denied"),
    text: result.verified ? "verified" : "not verified" }));
  const bits = [`${result.replayed_entries} of ${result.view_entries} entries rebuilt for ${result.viewer || "the viewer"}`];
  if (result.reason) bits.push(result.reason);
  for (const m of result.missing || []) bits.push(`missing ${m.from ? m.from + "–" + m.to + " " : ""}(${m.reason})`);
  for (const k of result.skips || []) bits.push(`not shown to the viewer: ${k.entries} entries ${k.from}–${k.to} (${k.reason})`);
  status.textContent = bits.join(" · ");
}

async function loadReviews() {
  let data;
  try { data = await api("GET", "/api/v1/reviews?state=open"); } catch (e) { return; }
  const list = clear($("reviews"));
  const items = data.items || [];
  for (const rv of items) {
    const cid = "review-comment-" + rv.id;
    const comment = el("input", { id: cid, required: true, placeholder: "justified: INC-1234" });
    list.append(el("li", { class: "card", dataset: { review: rv.id } },
      el("div", { class: "card-head" }, el("strong", { text: who(rv.requester) }), " broke glass on ",
        el("code", { text: `${rv.service}/${rv.env}` }), " ", timeEl(rv.created_at)),
      el("blockquote", { class: "reason", text: rv.reason }),
      el("p", {}, el("a", { href: "#timeline-h", text: "Timeline", on: { click: (ev) => { ev.preventDefault(); showTimeline(rv.grant_id); } } })),
      el("form", { class: "inline-form", on: { submit: async (ev) => {
        ev.preventDefault();
        if (!comment.value.trim()) { comment.focus(); return; }
        try {
          await api("POST", `/api/v1/reviews/${encodeURIComponent(rv.id)}/close`, { comment: comment.value.trim() });
          toast("Review closed.");
          loadReviews();
        } catch (e) { toast("Could not close: " + errorText(e), "bad"); }
      } } },
      el("label", { for: cid, text: "Finding" }), comment,
      el("button", { type: "submit", class: "small", text: "Close review" }))));
  }
  $("reviews-empty").hidden = items.length > 0;
}

// loadIntegrity shows the latest checkpoint and the result of verifying
// the whole trail. The checkpoint read doubles as the check that the viewer
// is security (403 otherwise) without writing an audit record, which a
// probing search would. It resolves to false when refused.
async function loadIntegrity() {
  let cp;
  try {
    cp = await api("GET", "/api/v1/audit/checkpoint");
  } catch (e) {
    if (e instanceof APIError && e.status === 403) return false;
    facts($("integrity"), [["Status", el("span", { class: "error", text: errorText(e) })]]);
    return true;
  }
  const status = el("span", { class: "muted", text: "verifying…" });
  const rows = [
    ["Verification", status],
    ["Events covered", String(cp.size)],
    ["Root hash", el("code", { class: "hash", text: cp.root_hash })],
    ["Signed at", timeEl(cp.time)],
    ["Log origin", cp.origin],
  ];
  facts($("integrity"), rows);
  try {
    const v = await api("GET", "/api/v1/audit/verify");
    const problems = (v.report && v.report.problems) || [];
    const text = v.verified
      ? `verified: ${v.report.events} events, chain and signed checkpoints intact`
      : `FAILED: ${problems.length ? problems[0].kind + " at seq " + problems[0].seq + ": " + problems[0].detail : (v.verify_error || "unknown problem")}`;
    rows[0][1] = el("span", { class: v.verified ? "ok" : "error", text });
    rows.push(["Verified at", timeEl(v.verified_at)]);
  } catch (e) {
    // The checkpoint is public (witnesses read it); verifying is for
    // security, so a refusal here is what says this page is not yours.
    if (e instanceof APIError && e.status === 403) return false;
    rows[0][1] = el("span", { class: "error", text: errorText(e) });
  }
  facts($("integrity"), rows);
  return true;
}

async function main() {
  if (!(await boot())) return;
  if (!(await loadIntegrity())) {
    $("sec-denied").hidden = false;
    for (const s of document.querySelectorAll("#app > section, #app > .grid")) s.hidden = true;
    return;
  }
  $("search").addEventListener("submit", (ev) => { ev.preventDefault(); pages.cursors = [""]; pages.index = 0; search(); });
  $("page-next").addEventListener("click", () => { pages.index++; search(); });
  $("page-prev").addEventListener("click", () => { if (pages.index > 0) pages.index--; search(); });
  $("timeline-form").addEventListener("submit", (ev) => { ev.preventDefault(); const id = $("t-grant").value.trim(); if (id) showTimeline(id); });
  $("replay-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const id = $("r-view").value.trim();
    const reason = $("r-reason").value.trim();
    if (!id || !reason) { $("replay-status").textContent = "A view id and a reason are required."; return; }
    replay(id, reason);
  });
  const hash = new URLSearchParams(location.hash.slice(1));
  if (hash.get("grant")) showTimeline(hash.get("grant"));
  loadReviews();
  search();
}

main();
