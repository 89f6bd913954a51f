"use strict";
const tokenInput = document.getElementById("token");
const filterInput = document.getElementById("filter");
const statusLine = document.getElementById("status");
tokenInput.value = sessionStorage.getItem("resilience-token") || "";

function headers() {
  return { "authorization": "Bearer " + tokenInput.value, "content-type": "application/json" };
}

// The admin API answers JSON; anything else (a proxy's error page) is reported by its
// status, not as a JSON parse error. Paths are relative to this page, which is served at
// the admin API's mount point (/admin/ in the gateway), so the page works wherever the
// API is mounted.
async function api(path, options) {
  const response = await fetch(path, Object.assign({ headers: headers() }, options || {}));
  let body = null;
  try { body = JSON.parse(await response.text()); } catch (_) { body = null; }
  if (!response.ok || body === null) {
    const message = body && body.error && body.error.message;
    throw new Error(message || `HTTP ${response.status} ${response.statusText}`.trim());
  }
  return body;
}

function text(tag, value, cls) {
  const node = document.createElement(tag);
  node.textContent = value;
  if (cls) { node.className = cls; }
  return node;
}

function cell(circuit, tenant, provider) {
  const td = document.createElement("td");
  td.className = "cell";
  td.dataset.tenant = tenant;
  td.dataset.provider = provider;
  if (!circuit) { td.appendChild(text("span", "—", "none")); return td; }
  td.appendChild(text("span", circuit.state.replace("_", " "), "state " + circuit.state));
  td.dataset.state = circuit.state;
  const reset = text("button", "reset");
  reset.dataset.action = "reset";
  reset.onclick = () => act(tenant, provider, "reset");
  const isolate = text("button", "isolate");
  isolate.dataset.action = "open";
  isolate.onclick = () => act(tenant, provider, "open");
  td.append(reset, isolate);
  return td;
}

async function act(tenant, provider, verb) {
  const tenantPath = encodeURIComponent(tenant);
  try {
    await api(`circuits/${tenantPath}/${encodeURIComponent(provider)}/${verb}`,
              { method: "POST", body: JSON.stringify({ reason: "dashboard" }) });
  } catch (error) {
    statusLine.textContent = `${verb} ${tenant}/${provider}: ${error.message}`;
    return;
  }
  await refresh();
}

// The grid is rebuilt only when what it shows changed: rebuilding it every poll replaced the
// buttons under the pointer, and a click whose press and release landed on different nodes
// was lost.
let renderedGrid = "";

function render(circuits) {
  const signature = circuits.map(c => [c.tenant, c.provider, c.state].join("\u0000")).join("\n");
  if (signature === renderedGrid) { return; }
  renderedGrid = signature;
  const providers = [...new Set(circuits.map(c => c.provider))].sort();
  const tenants = [...new Set(circuits.map(c => c.tenant))].sort();
  const byKey = new Map(circuits.map(c => [c.tenant + "\u0000" + c.provider, c]));
  const head = document.querySelector("#grid thead");
  const body = document.querySelector("#grid tbody");
  head.replaceChildren();
  body.replaceChildren();
  const row = document.createElement("tr");
  row.appendChild(text("th", "tenant"));
  providers.forEach(p => row.appendChild(text("th", p)));
  head.appendChild(row);
  tenants.forEach(t => {
    const tr = document.createElement("tr");
    tr.appendChild(text("th", t === "*" ? "* (provider-wide)" : t));
    providers.forEach(p => tr.appendChild(cell(byKey.get(t + "\u0000" + p), t, p)));
    body.appendChild(tr);
  });
}

function renderTimeline(events, error) {
  const list = document.getElementById("timeline");
  list.replaceChildren();
  if (error) { list.appendChild(text("li", "transitions: " + error, "none")); }
  events.forEach(e => {
    const actor = e.actor ? ` by ${e.actor}` : "";
    const kind = e.error_kind ? ` (${e.error_kind})` : "";
    list.appendChild(text("li",
      `${e.occurred_at.slice(0, 19)} ${e.tenant_id}/${e.provider} ${e.from_state} → ${e.to_state}: ${e.reason}${kind}${actor}`));
  });
}

function renderHealth(rows) {
  const body = document.querySelector("#health tbody");
  body.replaceChildren();
  const ms = v => v === null ? "—" : v.toFixed(1);
  rows.forEach(r => {
    const tr = document.createElement("tr");
    tr.dataset.provider = r.provider;
    [r.provider, r.model, String(r.in_flight), ms(r.p50_ms), ms(r.p99_ms),
     (100 * r.error_rate).toFixed(1) + "%", String(r.calls_total),
     r.rpm ? String(r.rpm) : "unlimited", String(r.rate_limit_skips)]
      .forEach(v => tr.appendChild(text("td", v)));
    body.appendChild(tr);
  });
}

async function refreshHealth() {
  const note = document.getElementById("health-note");
  try {
    renderHealth((await api("providers")).providers);
    note.textContent = "";
  } catch (error) {
    note.textContent = "provider health: " + error.message;
  }
}

async function refresh() {
  if (!tokenInput.value) { return; }
  sessionStorage.setItem("resilience-token", tokenInput.value);
  const tenant = filterInput.value.trim();
  const query = tenant ? "?tenant=" + encodeURIComponent(tenant) : "";
  try {
    // the grid does not depend on the audit trail: an API mounted without an audit
    // database answers /events with 503, and the timeline says so instead
    const [circuits, events] = await Promise.all([
      api("circuits" + query),
      api("events" + (query || "?") + (query ? "&" : "") + "limit=20")
        .catch(error => ({ events: [], error: error.message })),
    ]);
    render(circuits.circuits);
    renderTimeline(events.events, events.error);
    await refreshHealth();
    statusLine.textContent = "updated " + new Date().toLocaleTimeString();
  } catch (error) {
    statusLine.textContent = "error: " + error.message;
  }
}

tokenInput.addEventListener("change", refresh);
filterInput.addEventListener("change", refresh);
refresh();
setInterval(refresh, 2000);
