// Admin: the policy revision and the ingest sources (read-only), and the
// browser sessions, each of which an admin may end.
import { api, boot, el, $, clear, facts, timeEl, errorText, APIError, badge } from "./app.js";

// loadRules shows the alert rules in force; an admin edits and saves them
// (validated first: a bad file changes nothing and says what is wrong).
async function loadRules() {
  let r;
  try {
    r = await api("GET", "/api/v1/alert-rules");
  } catch (e) {
    if (e instanceof APIError && e.status === 404) { $("rules-off").hidden = false; $("rules-form").hidden = true; return; }
    $("rules-result").textContent = errorText(e);
    return;
  }
  facts($("rules-facts"), [["Rules", String((r.rules || []).length)], ["Digest", el("code", { text: r.digest })]]);
  if (!r.editable) { $("rules-off").hidden = false; $("rules-form").hidden = true; return; }
  $("rules-source").value = r.source || "";
}

async function saveRules(ev) {
  ev.preventDefault();
  const out = $("rules-result");
  $("rules-save").disabled = true;
  try {
    const r = await api("PUT", "/api/v1/alert-rules", { source: $("rules-source").value });
    out.textContent = `Saved: ${(r.rules || []).length} rules in force (${r.digest}).`;
    await loadRules();
  } catch (e) {
    out.textContent = "Not saved; the running rules are unchanged. " + errorText(e);
  } finally {
    $("rules-save").disabled = false;
  }
}

async function main() {
  if (!(await boot())) return;
  $("rules-form").addEventListener("submit", saveRules);
  loadRules();
  try {
    const p = await api("GET", "/api/v1/policy");
    facts($("policy"), [["Revision", el("code", { text: p.revision })]]);
  } catch (e) {
    facts($("policy"), [["Error", errorText(e)]]);
  }
  let data;
  try {
    data = await api("GET", "/api/v1/sources");
  } catch (e) {
    if (e instanceof APIError && e.status === 403) {
      $("admin-denied").hidden = false;
      $("sources").closest("section").hidden = true;
      return;
    }
    $("admin-denied").textContent = errorText(e);
    $("admin-denied").hidden = false;
    return;
  }
  const tbody = clear($("sources").tBodies[0]);
  for (const s of data.items || []) {
    tbody.append(el("tr", {},
      el("th", { scope: "row", text: s.name }),
      el("td", {}, el("code", { text: s.id })),
      el("td", { text: (s.streams || []).map((x) => `${x.service}/${x.env}`).join(", ") }),
      el("td", {}, timeEl(s.created_at)),
      el("td", { text: s.created_by || "" }),
      el("td", {}, s.revoked_at ? badge("revoked") : badge("active"))));
  }
  await loadSessions();
}

async function loadSessions() {
  const errBox = $("sessions-error");
  let data;
  try {
    data = await api("GET", "/api/v1/sessions");
  } catch (e) {
    errBox.textContent = errorText(e);
    errBox.hidden = false;
    return;
  }
  errBox.hidden = true;
  const tbody = clear($("sessions").tBodies[0]);
  for (const s of data.items || []) {
    const end = el("button", { type: "button", class: "danger small", text: s.current ? "End (this browser)" : "End",
      on: { click: () => endSession(s, end) } });
    tbody.append(el("tr", { dataset: { session: s.id } },
      el("th", { scope: "row", text: s.display || s.user_id }),
      el("td", {}, timeEl(s.created_at)),
      el("td", {}, timeEl(s.expires_at)),
      el("td", { text: s.remote_addr || "" }),
      el("td", { text: s.user_agent || "", class: "muted" }),
      el("td", {}, end)));
  }
}

async function endSession(s, button) {
  button.disabled = true;
  try {
    await api("DELETE", "/api/v1/sessions/" + encodeURIComponent(s.id));
  } catch (e) {
    $("sessions-error").textContent = errorText(e);
    $("sessions-error").hidden = false;
    button.disabled = false;
    return;
  }
  if (s.current) {
    location.reload();
    return;
  }
  await loadSessions();
}

main();
