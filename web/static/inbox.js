// Approver inbox: pending requests the signed-in user may decide on, polled
// every two seconds so new requests and decisions made elsewhere show
// without a reload. Cards are kept (not rebuilt) across polls so a comment
// being typed survives.
import { api, boot, el, $, clear, badge, timeEl, stream, toast, errorText, poll, who, countdown, verdictPast } from "./app.js";

function approvalsLine(r) {
  const d = r.decision || {};
  const groups = (d.approver_groups || []).join(", ") || "any approver";
  return `${d.approvals_required} approval${d.approvals_required === 1 ? "" : "s"} from ${groups}; ${r.approvals_needed} still needed`;
}

function fillApprovals(ul, r) {
  clear(ul);
  const list = r.approvals || [];
  if (!list.length) ul.append(el("li", { class: "muted", text: "No approval yet." }));
  for (const a of list) {
    ul.append(el("li", {}, badge(verdictPast(a.verdict)), " ", el("strong", { text: who(a.approver) }),
      a.comment ? ` — ${a.comment}` : "", " ", timeEl(a.time)));
  }
}

function card(r) {
  const cid = `comment-${r.id}`;
  const comment = el("input", { id: cid, name: "comment", placeholder: "optional", autocomplete: "off" });
  const status = el("p", { class: "result", role: "status" });
  const approvals = el("ul", { class: "plain approvals" });
  const needLine = el("dd", { class: "need", text: approvalsLine(r) });
  fillApprovals(approvals, r);
  const decide = async (verdict, button) => {
    for (const b of li.querySelectorAll("button")) b.disabled = true;
    try {
      const res = await api("POST", `/api/v1/requests/${encodeURIComponent(r.id)}/${verdict}`, { comment: comment.value.trim() });
      const what = verdict === "approve" ? "Approved" : "Denied";
      $("decided").prepend(el("li", {}, badge(res.state), ` ${what} ${who(r.requester)}'s request for `,
        el("code", { text: stream(r) }), comment.value.trim() ? ` (“${comment.value.trim()}”)` : "", " ", timeEl(new Date().toISOString())));
      toast(`${what}: ${who(r.requester)} on ${stream(r)}.`);
      li.remove();
      updateEmpty();
    } catch (e) {
      status.textContent = errorText(e);
      for (const b of li.querySelectorAll("button")) b.disabled = false;
    }
  };
  const li = el("li", { class: "card request", dataset: { request: r.id } },
    el("div", { class: "card-head" },
      el("strong", { class: "requester", text: who(r.requester) }),
      r.requester.email ? el("span", { class: "muted", text: r.requester.email }) : null,
      el("span", { class: "muted" }, "asks for"),
      el("code", { class: "stream-name", text: stream(r) }),
      el("span", { text: `for ${r.duration}` }),
      r.break_glass ? el("span", { class: "badge state-breakglass", text: "break-glass" }) : null),
    el("blockquote", { class: "reason", text: r.reason }),
    el("dl", { class: "facts compact" },
      el("dt", { text: "Requester groups" }), el("dd", { text: (r.requester.groups || []).join(", ") || "none" }),
      r.alert_id ? el("dt", { text: "Opened from alert" }) : null,
      r.alert_id ? el("dd", {}, el("code", { text: r.alert_id })) : null,
      el("dt", { text: "Policy requires" }), needLine,
      el("dt", { text: "Asked" }), el("dd", {}, timeEl(r.created_at)),
      r.pending_until ? el("dt", { text: "Lapses in" }) : null,
      r.pending_until ? el("dd", {}, countdown(r.pending_until)) : null),
    el("h3", { class: "small-h", text: "Approvals so far" }), approvals,
    el("form", { class: "inline-form", on: { submit: (ev) => { ev.preventDefault(); decide("approve"); } } },
      el("label", { for: cid, text: "Comment" }), comment,
      el("button", { type: "submit", class: "primary small", text: "Approve", "aria-label": `Approve ${who(r.requester)}'s request for ${stream(r)}` }),
      el("button", { type: "button", class: "danger small", text: "Deny", "aria-label": `Deny ${who(r.requester)}'s request for ${stream(r)}`, on: { click: () => decide("deny") } })),
    status);
  li.update = (nr) => { needLine.textContent = approvalsLine(nr); fillApprovals(approvals, nr); };
  return li;
}

function updateEmpty() {
  $("inbox-empty").hidden = $("inbox").children.length > 0;
}

async function refresh() {
  let data;
  try {
    data = await api("GET", "/api/v1/requests?state=pending");
  } catch (e) {
    $("inbox-updated").textContent = "Could not refresh: " + errorText(e);
    return;
  }
  const list = $("inbox");
  const items = data.items || [];
  const seen = new Set();
  for (const r of items) {
    seen.add(r.id);
    const existing = list.querySelector(`[data-request="${CSS.escape(r.id)}"]`);
    if (existing) existing.update(r);
    else list.append(card(r));
  }
  for (const li of [...list.children]) {
    if (!seen.has(li.dataset.request)) li.remove(); // decided elsewhere, cancelled or lapsed
  }
  updateEmpty();
  $("inbox-updated").textContent = "Updated " + new Date().toLocaleTimeString() + ".";
}

async function main() {
  if (!(await boot())) return;
  poll(refresh, 2000);
}

main();
