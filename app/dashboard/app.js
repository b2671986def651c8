// The admin dashboard: every figure comes from the authenticated admin API
// (/v1/gateway/...), with the admin token kept in sessionStorage only.
// Text goes into the page with textContent, never as HTML.
"use strict";

const API = "/v1/gateway";
const TOKEN_KEY = "gatewayAdminToken";
const SVG = "http://www.w3.org/2000/svg";

function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

async function api(method, path, body) {
  const options = { method, headers: { Authorization: `Bearer ${token()}` } };
  if (body !== undefined) {
    options.headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(body);
  }
  const response = await fetch(API + path, options);
  const answer = await response.json();
  if (!response.ok) {
    throw new Error(answer.error ? answer.error.message : `HTTP ${response.status}`);
  }
  return answer;
}

function el(tag, text) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}

function fill(tableId, rows) {
  const body = document.querySelector(`#${tableId} tbody`);
  body.replaceChildren(...rows.map((cells) => {
    const row = el("tr");
    for (const cell of cells) {
      const td = el("td");
      if (cell instanceof Node) td.append(cell); else td.textContent = cell ?? "";
      row.append(td);
    }
    return row;
  }));
}

function when(seconds) {
  return new Date(seconds * 1000).toISOString().replace("T", " ").slice(0, 19);
}

function usd(value) {
  return value === null || value === undefined ? "" : value.toFixed(6);
}

function status(message) {
  document.getElementById("status").textContent = message || "";
}

function progress(spent, limit) {
  const bar = el("progress");
  bar.max = limit;
  bar.value = Math.min(spent, limit);
  const wrap = el("span");
  wrap.append(bar, el("span", ` ${usd(spent)}`));
  return wrap;
}

const views = {
  async keys() {
    const keys = (await api("GET", "/keys?limit=500")).data;
    fill("keys", keys.map((key) => {
      const rotate = el("button", "Rotate (1 h grace)");
      rotate.className = "rotate";
      rotate.addEventListener("click", async () => {
        const rotation = await api("POST", `/keys/${key.id}/rotate`, { grace_seconds: 3600 });
        showSecret(rotation.secret);
        views.keys();
      });
      const spend = key.usage ? usd(key.usage.period_spend_usd) : "";
      return [key.name, key.id, key.token_prefix, key.status, spend, rotate];
    }));
  },
  async tenants() {
    const tenants = (await api("GET", "/tenants?limit=500")).data;
    fill("tenants", tenants.map((t) => [t.id, t.name, t.status, usd(t.max_budget_usd)]));
  },
  async spend() {
    const rows = (await api("GET", "/usage/summary?group_by=day,model")).data;
    fill("spend", rows.map((r) => [when(r.day).slice(0, 10), r.model, r.requests, usd(r.cost_usd)]));
    drawChart(rows);
  },
  async ledger() {
    const query = new URLSearchParams({ limit: "500" });
    const start = document.getElementById("ledger-start").value;
    const end = document.getElementById("ledger-end").value;
    if (start) query.set("start", String(Date.parse(start) / 1000));
    if (end) query.set("end", String(Date.parse(end) / 1000 + 86400));
    const rows = (await api("GET", `/ledger?${query}`)).data;
    fill("ledger", rows.map((r) => [
      when(r.created_at), r.key_name, r.model, r.status, r.input_tokens, r.output_tokens,
      usd(r.cost_usd),
    ]));
  },
  async budgets() {
    const shared = (await api("GET", "/budgets?limit=500")).data;
    const keys = (await api("GET", "/keys?limit=500")).data.filter((k) => k.max_budget_usd !== null);
    const rows = [
      ...shared.map((b) => [b.name, b.budget_period, progress(b.usage.period_spend_usd, b.max_budget_usd), usd(b.max_budget_usd)]),
      ...keys.map((k) => [`key ${k.name}`, k.budget_period, progress(k.usage.period_spend_usd, k.max_budget_usd), usd(k.max_budget_usd)]),
    ];
    fill("budgets", rows);
  },
  async audit() {
    const rows = (await api("GET", "/audit?limit=200")).data;
    fill("audit", rows.map((r) => [
      when(r.created_at), r.actor, r.action, `${r.resource_type} ${r.resource_id}`,
      Object.keys(r.diff).join(", "),
    ]));
  },
};

function drawChart(rows) {
  const chart = document.getElementById("spend-chart");
  const byDay = new Map();
  for (const row of rows) byDay.set(row.day, (byDay.get(row.day) || 0) + row.cost_usd);
  const days = [...byDay.keys()].sort();
  const top = Math.max(...byDay.values(), 1e-9);
  const width = Math.max(8, Math.floor(600 / Math.max(days.length, 1)) - 4);
  const bars = days.map((day, index) => {
    const height = Math.round((byDay.get(day) / top) * 180);
    const rect = document.createElementNS(SVG, "rect");
    rect.setAttribute("x", String(20 + index * (width + 4)));
    rect.setAttribute("y", String(190 - height));
    rect.setAttribute("width", String(width));
    rect.setAttribute("height", String(height));
    const label = document.createElementNS(SVG, "text");
    label.setAttribute("x", String(20 + index * (width + 4)));
    label.setAttribute("y", "205");
    label.textContent = when(day).slice(5, 10);
    return [rect, label];
  });
  chart.replaceChildren(...bars.flat());
}

function showSecret(secret) {
  document.getElementById("new-secret").textContent = secret;
  document.getElementById("secret-box").hidden = false;
}

async function show(name) {
  for (const view of document.querySelectorAll(".view")) view.hidden = view.id !== `view-${name}`;
  for (const tab of document.querySelectorAll("#tabs button")) {
    tab.classList.toggle("active", tab.dataset.view === name);
  }
  status("");
  try {
    await views[name]();
  } catch (error) {
    status(error.message);
  }
}

function loggedIn(yes) {
  document.getElementById("login").hidden = yes;
  document.getElementById("tabs").hidden = !yes;
  document.getElementById("logout").hidden = !yes;
  if (!yes) for (const view of document.querySelectorAll(".view")) view.hidden = true;
}

async function logIn(event) {
  event.preventDefault();
  sessionStorage.setItem(TOKEN_KEY, document.getElementById("token").value);
  try {
    await api("GET", "/keys?limit=1");
  } catch (error) {
    sessionStorage.removeItem(TOKEN_KEY);
    document.getElementById("login-error").textContent = error.message;
    return;
  }
  document.getElementById("token").value = "";
  document.getElementById("login-error").textContent = "";
  loggedIn(true);
  show("keys");
}

async function createKey(event) {
  event.preventDefault();
  const body = { name: document.getElementById("new-key-name").value };
  const project = document.getElementById("new-key-project").value;
  const budget = document.getElementById("new-key-budget").value;
  if (project) body.project_id = project;
  if (budget) body.max_budget_usd = Number(budget);
  try {
    const made = await api("POST", "/keys", body);
    showSecret(made.secret);
    document.getElementById("new-key").reset();
    await views.keys();
  } catch (error) {
    status(error.message);
  }
}

document.addEventListener("DOMContentLoaded", () => {
  document.getElementById("login-form").addEventListener("submit", logIn);
  document.getElementById("new-key").addEventListener("submit", createKey);
  document.getElementById("ledger-range").addEventListener("submit", (event) => {
    event.preventDefault();
    show("ledger");
  });
  document.getElementById("logout").addEventListener("click", () => {
    sessionStorage.removeItem(TOKEN_KEY);
    loggedIn(false);
  });
  for (const tab of document.querySelectorAll("#tabs button")) {
    tab.addEventListener("click", () => show(tab.dataset.view));
  }
  if (token()) {
    loggedIn(true);
    show("keys");
  } else {
    loggedIn(false);
  }
});
