// Shared helpers for loggate's pages: the API client (same-origin fetch with
// the CSRF token on state-changing calls), DOM building with text only, the
// signed-in header, and time formatting. Nothing here ever assigns HTML.

const session = { me: null, csrf: "" };

export class APIError extends Error {
  constructor(status, code, message) {
    super(message || `HTTP ${status}`);
    this.status = status;
    this.code = code || "";
  }
}

// api calls the JSON API. It returns the decoded body or throws APIError.
export async function api(method, path, body) {
  const opts = { method, credentials: "same-origin", headers: { Accept: "application/json" } };
  if (method !== "GET" && method !== "HEAD") {
    opts.headers["X-CSRF-Token"] = session.csrf;
  }
  if (body !== undefined) {
    opts.headers["Content-Type"] = "application/json";
    opts.body = JSON.stringify(body);
  }
  let resp;
  try {
    resp = await fetch(path, opts);
  } catch (e) {
    throw new APIError(0, "network", "the gateway is unreachable");
  }
  let data = null;
  const text = await resp.text();
  if (text) {
    try { data = JSON.parse(text); } catch { data = null; }
  }
  if (resp.status === 401 && session.me) {
    // The session ended (expired or signed out elsewhere): offer sign-in.
    showSignIn();
  }
  if (!resp.ok) {
    throw new APIError(resp.status, data && data.code, (data && data.error) || `HTTP ${resp.status}`);
  }
  return data;
}

// el builds an element. attrs: plain attributes, plus "class", "text",
// "dataset" and "on" (an object of event listeners). Children may be
// strings (added as text nodes), nodes, or null.
export function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") e.className = v;
    else if (k === "text") e.textContent = v;
    else if (k === "dataset") Object.assign(e.dataset, v);
    else if (k === "on") for (const [ev, fn] of Object.entries(v)) e.addEventListener(ev, fn);
    else if (v === true) e.setAttribute(k, "");
    else e.setAttribute(k, String(v));
  }
  append(e, ...children);
  return e;
}

export function append(parent, ...children) {
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    parent.append(typeof c === "string" || typeof c === "number" ? document.createTextNode(String(c)) : c);
  }
  return parent;
}

export const $ = (id) => document.getElementById(id);

export function clear(node) {
  node.replaceChildren();
  return node;
}

// facts fills a <dl> from [label, value] pairs; value may be a node.
export function facts(dl, pairs) {
  clear(dl);
  for (const [k, v] of pairs) {
    if (v === undefined || v === null || v === "") continue;
    dl.append(el("dt", { text: k }), append(el("dd"), v));
  }
}

export function who(s) {
  if (!s) return "";
  return s.name || s.email || s.id || "";
}

export function stream(x) {
  return `${x.service}/${x.env}`;
}

export function fmtTime(t) {
  if (!t) return "";
  const d = new Date(t);
  if (isNaN(d)) return String(t);
  return d.toLocaleString(undefined, { year: "numeric", month: "short", day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit" });
}

export function timeEl(t) {
  return el("time", { datetime: t, title: t, text: fmtTime(t) });
}

// fmtLeft formats a remaining time in ms as "1h 02m 03s".
export function fmtLeft(ms) {
  if (ms <= 0) return "expired";
  const s = Math.floor(ms / 1000);
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
  const pad = (n) => String(n).padStart(2, "0");
  if (h > 0) return `${h}h ${pad(m)}m ${pad(sec)}s`;
  if (m > 0) return `${m}m ${pad(sec)}s`;
  return `${sec}s`;
}

// Countdowns: every element with data-expires is refreshed once a second.
function tickCountdowns() {
  const now = Date.now();
  for (const e of document.querySelectorAll("[data-expires]")) {
    const left = new Date(e.dataset.expires).getTime() - now;
    e.textContent = fmtLeft(left);
    e.classList.toggle("soon", left > 0 && left < 5 * 60 * 1000);
    e.classList.toggle("over", left <= 0);
  }
}
setInterval(tickCountdowns, 1000);

export function countdown(expiresAt) {
  const e = el("span", { class: "countdown", dataset: { expires: expiresAt } });
  e.textContent = fmtLeft(new Date(expiresAt).getTime() - Date.now());
  return e;
}

// verdictPast turns an approval verdict ("approve", "deny") into words.
export function verdictPast(v) {
  return { approve: "approved", deny: "denied" }[v] || v;
}

export function badge(state) {
  return el("span", { class: `badge state-${state}`, text: state });
}

let toastTimer = 0;
export function toast(msg, kind) {
  const t = $("toast");
  if (!t) return;
  t.textContent = msg;
  t.className = `toast ${kind || ""}`;
  t.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { t.hidden = true; }, 5000);
}

export function errorText(e) {
  if (e instanceof APIError) return e.message;
  return String(e && e.message ? e.message : e);
}

export function me() {
  return session.me;
}

export function inGroup(g) {
  return !!(session.me && (session.me.groups || []).includes(g));
}

// boot loads who is signed in and draws the header. It resolves to the
// identity, or to null after showing the sign-in panel.
function showSignIn() {
  const next = location.pathname + location.search;
  const link = $("signin-link");
  link.href = "/login?next=" + encodeURIComponent(next);
  $("signin").hidden = false;
  $("app").hidden = true;
  clear($("who")).append(el("a", { class: "button", href: link.href, text: "Sign in" }));
}

export async function boot() {
  const whoBox = $("who");
  try {
    session.me = await api("GET", "/api/v1/me");
    session.csrf = session.me.csrf_token || "";
  } catch (e) {
    if (e instanceof APIError && e.status === 401) {
      showSignIn();
      return null;
    }
    clear(whoBox).append(el("span", { class: "error", text: "Cannot reach loggate: " + errorText(e) }));
    return null;
  }
  const m = session.me;
  const form = el("form", { method: "post", action: "/logout", class: "logout" },
    el("input", { type: "hidden", name: "csrf_token", value: session.csrf }),
    el("button", { type: "submit", class: "link", text: "Sign out" }));
  clear(whoBox).append(
    el("span", { class: "me", title: m.email || m.id },
      el("strong", { id: "me-name", text: m.display || m.name || m.email || m.id })),
    " ",
    el("span", { class: "groups muted", text: (m.groups || []).join(", ") }),
    " ",
    form);
  $("app").hidden = false;
  return m;
}

// poll runs fn now and then every ms while the page is visible.
export function poll(fn, ms) {
  let timer = 0;
  let running = false;
  const run = async () => {
    if (running) return;
    running = true;
    try { await fn(); } finally { running = false; }
  };
  const start = () => { clearInterval(timer); timer = setInterval(run, ms); };
  document.addEventListener("visibilitychange", () => {
    if (document.hidden) clearInterval(timer);
    else { run(); start(); }
  });
  run();
  start();
  return run;
}
