// One request's details, for requester, approvers and security.
import { api, boot, el, $, clear, facts, badge, timeEl, stream, errorText, who, verdictPast } from "./app.js";

async function main() {
  if (!(await boot())) return;
  const id = document.getElementById("main").dataset.id;
  let r;
  try {
    r = await api("GET", `/api/v1/requests/${encodeURIComponent(id)}`);
  } catch (e) {
    facts($("req"), [["Error", errorText(e)]]);
    return;
  }
  const d = r.decision || {};
  facts($("req"), [
    ["State", badge(r.state)],
    ["Stream", el("code", { text: stream(r) })],
    ["Requester", `${who(r.requester)} ${r.requester.email ? "<" + r.requester.email + ">" : ""}`],
    ["Duration", r.duration],
    ["Reason", r.reason],
    ["Break-glass", r.break_glass ? "yes" : "no"],
    ["Opened from alert", r.alert_id ? el("code", { text: r.alert_id }) : ""],
    ["Asked", timeEl(r.created_at)],
    ["Policy", d.allow ? (d.auto_approve ? "auto-approve" : `${d.approvals_required} approval(s) from ${(d.approver_groups || []).join(", ")}`) : "denied: " + (d.reasons || []).join("; ")],
    ["Policy revision", d.policy_revision],
    ["Closed by", r.closed_by ? who(r.closed_by) : ""],
  ]);
  const ul = clear($("req-approvals"));
  for (const a of r.approvals || []) ul.append(el("li", {}, badge(verdictPast(a.verdict)), " ", who(a.approver), a.comment ? ` — ${a.comment}` : "", " ", timeEl(a.time)));
  if (!(r.approvals || []).length) ul.append(el("li", { class: "muted", text: "none" }));
  if (r.grant) {
    clear($("req-grant")).append("Grant ", el("code", { text: r.grant.id }), " ", badge(r.grant.state), " ",
      el("a", { href: `/grants/${encodeURIComponent(r.grant.id)}/view`, text: "Open the live viewer" }));
  }
}

main();
