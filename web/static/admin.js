// Admin (read-only): the policy revision and the ingest sources.
import { api, boot, el, $, clear, facts, timeEl, errorText, APIError, badge } from "./app.js";

async function main() {
  if (!(await boot())) return;
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
}

main();
