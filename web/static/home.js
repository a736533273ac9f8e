// Home: who you are, streams you may ask for, the request form with
// break-glass confirmation, your active grants and your requests.
import { api, boot, el, $, clear, facts, badge, countdown, timeEl, stream, toast, errorText, poll, who, verdictPast } from "./app.js";

let streams = [];

function requires(s) {
  if (s.auto_approve) return "auto-approved";
  const groups = (s.approver_groups || []).join(", ") || "approvers";
  return `${s.approvals_required} approval${s.approvals_required === 1 ? "" : "s"} from ${groups}`;
}

function selectedStream() {
  const v = $("ask-stream").value;
  return streams.find((s) => stream(s) === v);
}

function describeSelected() {
  const s = selectedStream();
  const hint = $("ask-policy");
  const reasonHint = $("ask-reason-hint");
  const bg = $("ask-breakglass");
  if (!s) { hint.textContent = ""; reasonHint.textContent = ""; return; }
  hint.textContent = `Policy: ${requires(s)}; at most ${s.max_duration}; backfill up to ${s.max_lookback}.`;
  reasonHint.textContent = s.reason_pattern ? `Must start with a ticket reference (${s.reason_pattern}), e.g. INC-1234.` : "What you are investigating.";
  bg.disabled = !s.break_glass_allowed;
  if (!s.break_glass_allowed) bg.checked = false;
  bg.title = s.break_glass_allowed ? "" : "Break-glass is not allowed for you on this stream";
}

async function loadStreams() {
  const data = await api("GET", "/api/v1/streams");
  streams = data.items || [];
  const tbody = clear($("streams").tBodies[0]);
  const sel = $("ask-stream");
  const keep = sel.value;
  clear(sel);
  for (const s of streams) {
    const name = stream(s);
    sel.append(el("option", { value: name, text: name }));
    tbody.append(el("tr", {},
      el("th", { scope: "row" }, el("code", { text: name })),
      el("td", { text: requires(s) + (s.break_glass_allowed ? " · break-glass allowed" : "") }),
      el("td", { text: s.max_duration }),
      el("td", { text: s.max_lookback === "0s" ? "none" : s.max_lookback }),
      el("td", {}, el("button", {
        type: "button", class: "small", text: "Ask", "aria-label": `Ask for ${name}`,
        on: { click: () => { sel.value = name; describeSelected(); $("ask-reason").focus(); } },
      }))));
  }
  if (keep && streams.some((s) => stream(s) === keep)) sel.value = keep;
  $("streams-empty").hidden = streams.length > 0;
  describeSelected();
}

function confirmBreakGlass(reason) {
  const dlg = $("bg-dialog");
  const text = $("bg-reason");
  const err = $("bg-error");
  text.value = reason;
  err.textContent = "";
  return new Promise((resolve) => {
    const done = (v) => {
      $("bg-form").removeEventListener("submit", onSubmit);
      $("bg-cancel").removeEventListener("click", onCancel);
      dlg.removeEventListener("cancel", onCancel);
      if (dlg.open) dlg.close();
      resolve(v);
    };
    const onSubmit = (ev) => {
      ev.preventDefault();
      if (text.value.trim().length < 10) {
        err.textContent = "Write at least 10 characters: security will read this.";
        text.focus();
        return;
      }
      done(text.value.trim());
    };
    const onCancel = (ev) => { ev.preventDefault(); done(null); };
    $("bg-form").addEventListener("submit", onSubmit);
    $("bg-cancel").addEventListener("click", onCancel);
    dlg.addEventListener("cancel", onCancel);
    dlg.showModal();
    text.focus();
  });
}

// parseScope turns "k=v, k2=v2" into an object; "" is undefined, a
// malformed scope null.
function parseScope(text) {
  const t = text.trim();
  if (!t) return undefined;
  const out = {};
  for (const part of t.split(",")) {
    const i = part.indexOf("=");
    if (i <= 0) return null;
    out[part.slice(0, i).trim()] = part.slice(i + 1).trim();
  }
  return out;
}

async function submitAsk(ev) {
  ev.preventDefault();
  const out = $("ask-result");
  const s = selectedStream();
  if (!s) { out.textContent = "Choose a stream."; return; }
  let reason = $("ask-reason").value.trim();
  const duration = $("ask-duration").value.trim();
  const breakGlass = $("ask-breakglass").checked;
  if (!duration) { out.textContent = "Give a duration, like 30m."; $("ask-duration").focus(); return; }
  if (!breakGlass && !reason) { out.textContent = "Give a reason."; $("ask-reason").focus(); return; }
  if (breakGlass) {
    reason = await confirmBreakGlass(reason);
    if (reason === null) { out.textContent = "Break-glass cancelled; nothing was requested."; return; }
  }
  const level = $("ask-level").value;
  const scope = parseScope($("ask-scope").value);
  if (scope === null) { out.textContent = "Write the scope as key=value pairs separated by commas, like tenant=acme."; $("ask-scope").focus(); return; }
  if (scope && !level) { out.textContent = "A scope needs a level: choose Debug or Trace."; $("ask-level").focus(); return; }
  const body = { service: s.service, env: s.env, duration, reason, break_glass: breakGlass };
  if (level) body.level = level;
  if (scope) body.scope = scope;
  $("ask-submit").disabled = true;
  try {
    const r = await api("POST", "/api/v1/requests", body);
    clear(out);
    if (r.state === "denied") {
      out.append(badge("denied"), " ", (r.decision.reasons || []).join("; ") || "policy denied the request");
    } else if (r.state === "pending") {
      out.append(badge("pending"), ` Waiting for ${r.approvals_needed || r.decision.approvals_required} approval(s) from ${(r.decision.approver_groups || []).join(", ")}. `,
        el("a", { href: `/requests/${encodeURIComponent(r.id)}`, text: "Details" }));
      $("ask-reason").value = "";
    } else {
      out.append(badge(r.state), " Access granted. ");
      if (r.grant) out.append(el("a", { href: `/grants/${encodeURIComponent(r.grant.id)}/view`, text: "Open the live viewer" }));
      $("ask-reason").value = "";
    }
    await refresh();
  } catch (e) {
    out.textContent = "Could not request: " + errorText(e);
  } finally {
    $("ask-submit").disabled = false;
  }
}

function grantCard(g) {
  const revokeReason = el("input", { id: `revoke-${g.id}`, placeholder: "done debugging", required: true });
  const extendDur = el("input", { id: `extend-${g.id}`, value: "30m", size: 6 });
  const extendReason = el("input", { id: `extend-reason-${g.id}`, placeholder: "still investigating" });
  const revokeForm = el("form", { class: "inline-form", hidden: true, on: { submit: async (ev) => {
    ev.preventDefault();
    if (!revokeReason.value.trim()) { revokeReason.focus(); return; }
    try {
      await api("POST", `/api/v1/grants/${encodeURIComponent(g.id)}/revoke`, { reason: revokeReason.value.trim() });
      toast(`Revoked ${stream(g)}.`);
      await refresh();
    } catch (e) { toast("Could not revoke: " + errorText(e), "bad"); }
  } } },
  el("label", { for: revokeReason.id, text: "Reason" }), revokeReason,
  el("button", { type: "submit", class: "danger small", text: "Revoke now" }));
  const extendForm = el("form", { class: "inline-form", hidden: true, on: { submit: async (ev) => {
    ev.preventDefault();
    try {
      const r = await api("POST", `/api/v1/grants/${encodeURIComponent(g.id)}/extend`, { duration: extendDur.value.trim(), reason: extendReason.value.trim() || "extension" });
      toast(r.state === "pending" ? "Extension asked; it needs approval." : `Extension ${r.state}.`);
      await refresh();
    } catch (e) { toast("Could not extend: " + errorText(e), "bad"); }
  } } },
  el("label", { for: extendDur.id, text: "More time" }), extendDur,
  el("label", { for: extendReason.id, text: "Reason" }), extendReason,
  el("button", { type: "submit", class: "small", text: "Ask" }));
  return el("li", { class: "card", dataset: { grant: g.id } },
    el("div", { class: "card-head" },
      el("strong", {}, el("code", { text: stream(g) })),
      g.break_glass ? el("span", { class: "badge state-breakglass", text: "break-glass" }) : null,
      g.level ? el("span", { class: "badge", text: g.level + (g.scope ? " · " + Object.entries(g.scope).map(([k, v]) => `${k}=${v}`).join(", ") : "") + " while viewing" }) : null,
      el("span", { class: "muted" }, "expires in ", countdown(g.expires_at))),
    el("div", { class: "actions" },
      el("a", { class: "button primary small", href: `/grants/${encodeURIComponent(g.id)}/view`, text: "View" }),
      el("button", { type: "button", class: "small", text: "Extend…", on: { click: () => { extendForm.hidden = !extendForm.hidden; if (!extendForm.hidden) extendDur.focus(); } } }),
      el("button", { type: "button", class: "small danger", text: "Revoke…", on: { click: () => { revokeForm.hidden = !revokeForm.hidden; if (!revokeForm.hidden) revokeReason.focus(); } } })),
    extendForm, revokeForm);
}

async function loadGrants() {
  const data = await api("GET", "/api/v1/grants?state=active");
  const list = $("grants");
  const items = data.items || [];
  const seen = new Set();
  for (const g of items) {
    seen.add(g.id);
    const existing = list.querySelector(`[data-grant="${CSS.escape(g.id)}"]`);
    if (!existing) list.append(grantCard(g));
    else existing.querySelector("[data-expires]").dataset.expires = g.expires_at;
  }
  for (const li of [...list.children]) if (!seen.has(li.dataset.grant)) li.remove();
  $("grants-empty").hidden = items.length > 0;
  return items;
}

let lastRequests = "";

async function loadRequests(grants) {
  const data = await api("GET", "/api/v1/requests?limit=50");
  const items = data.items || [];
  // Rebuild only on change, so focus and selection in the table survive polls.
  const sig = JSON.stringify([items, grants.map((g) => g.id)]);
  if (sig === lastRequests) return;
  lastRequests = sig;
  const byReq = new Map(grants.map((g) => [g.request_id, g]));
  const tbody = clear($("reqs").tBodies[0]);
  for (const r of items) {
    const g = byReq.get(r.id);
    const approvals = (r.approvals || []).map((a) => `${verdictPast(a.verdict)} by ${who(a.approver)}`).join("; ");
    const actions = el("td", { class: "actions" });
    if (g) actions.append(el("a", { href: `/grants/${encodeURIComponent(g.id)}/view`, class: "button small", text: "View" }));
    if (r.state === "pending") {
      actions.append(el("button", { type: "button", class: "small", text: "Cancel", on: { click: async () => {
        try { await api("POST", `/api/v1/requests/${encodeURIComponent(r.id)}/cancel`); await refresh(); }
        catch (e) { toast("Could not cancel: " + errorText(e), "bad"); }
      } } }));
    }
    const reasonCell = el("td", { class: "wrap" }, r.reason);
    if (r.state === "denied" && r.decision && r.decision.reasons && r.decision.reasons.length) {
      reasonCell.append(el("div", { class: "muted", text: "Denied: " + r.decision.reasons.join("; ") }));
    }
    tbody.append(el("tr", { dataset: { request: r.id } },
      el("td", {}, timeEl(r.created_at)),
      el("td", {}, el("a", { href: `/requests/${encodeURIComponent(r.id)}` }, el("code", { text: stream(r) })), r.break_glass ? " (break-glass)" : ""),
      el("td", {}, badge(r.state)),
      el("td", { text: r.duration }),
      reasonCell,
      el("td", { text: approvals || (r.state === "pending" ? `${r.approvals_needed} more needed` : "") }),
      actions));
  }
  $("reqs").hidden = items.length === 0;
  $("reqs-empty").hidden = items.length > 0;
}

async function refresh() {
  try {
    const grants = await loadGrants();
    await loadRequests(grants);
  } catch (e) {
    toast("Could not refresh: " + errorText(e), "bad");
  }
}

async function main() {
  const m = await boot();
  if (!m) return;
  facts($("me"), [["Name", m.name || m.display], ["Username", m.username], ["Email", m.email], ["Groups", (m.groups || []).join(", ") || "none"], ["Signed in via", m.via]]);
  $("ask-stream").addEventListener("change", describeSelected);
  $("ask").addEventListener("submit", submitAsk);
  $("bg-reason").addEventListener("input", () => { $("bg-error").textContent = ""; });
  try { await loadStreams(); } catch (e) { toast("Could not load streams: " + errorText(e), "bad"); }
  poll(refresh, 3000);
}

main();
