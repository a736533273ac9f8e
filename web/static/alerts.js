// Alerts: what fires now (with the link to ask for access to its stream)
// and recent history, refreshed every few seconds.
import { api, boot, el, $, clear, badge, timeEl, errorText, poll, toast, APIError } from "./app.js";

function streamText(a) {
  return a.service || a.env ? `${a.service}/${a.env}` : "";
}

function groupText(a) {
  return Object.entries(a.group || {}).map(([k, v]) => `${k}=${v}`).join(", ");
}

function firingCard(a) {
  return el("li", { class: "card alert", dataset: { alert: a.id } },
    el("div", { class: "card-head" },
      badge(a.state),
      el("strong", { text: a.rule }),
      a.severity ? el("span", { class: "muted", text: a.severity }) : null,
      streamText(a) ? el("code", { class: "stream-name", text: streamText(a) }) : null),
    el("p", { text: `${a.count} in ${a.window}${groupText(a) ? " · " + groupText(a) : ""}` }),
    // Only there when policy let the alert keep it (already redacted);
    // shown as text, never as markup.
    a.sample ? el("pre", { class: "alert-sample", text: a.sample }) : null,
    el("p", {}, "Since ", a.started_at ? timeEl(a.started_at) : "—", " ",
      streamText(a) ? el("a", { href: a.link, text: "Ask for access to this stream" }) : null));
}

async function refresh() {
  let data;
  try {
    data = await api("GET", "/api/v1/alerts?limit=100");
  } catch (e) {
    if (e instanceof APIError && e.status === 403) { $("alerts-denied").hidden = false; return; }
    toast("Could not load alerts: " + errorText(e), "bad");
    return;
  }
  const items = data.items || [];
  const firing = items.filter((a) => a.state === "firing" || a.state === "pending");
  const list = clear($("firing"));
  for (const a of firing) list.append(firingCard(a));
  $("firing-empty").hidden = firing.length > 0;
  const tbody = clear($("recent").tBodies[0]);
  for (const a of items) {
    tbody.append(el("tr", { dataset: { alert: a.id } },
      el("th", { scope: "row", text: a.rule }),
      el("td", {}, badge(a.state)),
      el("td", {}, streamText(a) ? el("code", { text: streamText(a) }) : ""),
      el("td", { text: String(a.count) }),
      el("td", {}, a.started_at ? timeEl(a.started_at) : ""),
      el("td", {}, a.ended_at ? timeEl(a.ended_at) : "")));
  }
  $("recent-empty").hidden = items.length > 0;
}

async function main() {
  const m = await boot();
  if (!m) return;
  await refresh();
  poll(refresh, 3000);
}

main();
