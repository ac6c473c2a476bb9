// tremor's search page: reads q/index/k from the URL, searches through POST /search with explain, and draws the
// query's term weights and each hit's term contributions as bars. No external code; text is set with textContent.
"use strict";

const params = new URLSearchParams(location.search);
const apiKey = params.get("api_key");
const form = document.getElementById("search-form");
const qInput = document.getElementById("q");
const indexSelect = document.getElementById("index");
const kSelect = document.getElementById("k");
const statusLine = document.getElementById("status");
const queryPanel = document.getElementById("query-panel");
const queryTerms = document.getElementById("query-terms");
const queryHeading = document.getElementById("query-heading");
const results = document.getElementById("results");
const MAX_BARS = 12;

function api(path, options = {}) {
  const headers = Object.assign({ "Content-Type": "application/json" }, options.headers || {});
  if (apiKey) headers["X-API-Key"] = apiKey;
  return fetch(path, Object.assign({}, options, { headers })).then(async (response) => {
    const body = await response.json().catch(() => ({}));
    if (!response.ok) {
      const message = body.error ? body.error.message : `HTTP ${response.status}`;
      throw new Error(message);
    }
    return body;
  });
}

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function bars(container, shown, valueOf, label) {
  container.replaceChildren();
  const top = Math.max(...shown.map(valueOf), 1e-12);
  for (const row of shown) {
    const bar = el("div", "bar" + (row.expansion ? " expansion" : ""));
    bar.title = label(row);
    const token = el("span", "token", row.token);
    const track = el("span", "track");
    const fill = el("span", "fill");
    fill.style.width = `${Math.max(2, (100 * valueOf(row)) / top)}%`;
    fill.style.display = "block";
    track.appendChild(fill);
    bar.append(token, track, el("span", "value", valueOf(row).toFixed(3)));
    container.appendChild(bar);
  }
}

function showQuery(result) {
  const terms = result.query_terms || [];
  queryPanel.hidden = terms.length === 0;
  // the heaviest terms, and the query's own terms even when expansions outweigh them
  const own = terms.filter((t) => t.expansion === false).slice(0, MAX_BARS);
  const shown = [...new Set([...terms.slice(0, MAX_BARS), ...own])].sort((a, b) => b.weight - a.weight);
  const hidden = terms.length - shown.length;
  queryHeading.textContent = hidden > 0 ? `Query terms (${shown.length} of ${terms.length})` : "Query terms";
  bars(queryTerms, shown, (t) => t.weight,
       (t) => `${t.token}: weight ${t.weight.toFixed(4)}${t.expansion ? " (expansion)" : ""}`);
}

function showHits(result) {
  results.replaceChildren();
  for (const hit of result.hits) {
    const item = el("li", "hit");
    const head = el("div", "hit-head");
    const title = el("div", "hit-title");
    title.append(el("span", "rank", `${hit.rank}.`), document.createTextNode(hit.title || hit.id));
    if (hit.title) title.appendChild(el("span", "hit-id", hit.id));
    head.append(title, el("span", "score", `score ${hit.score.toFixed(3)}`));
    item.append(head, el("p", "snippet", hit.snippet || ""));
    if (hit.explain && hit.explain.terms.length) {
      const more = hit.explain.n_matched > MAX_BARS ? ` (top ${MAX_BARS} of ${hit.explain.n_matched})` : "";
      item.appendChild(el("div", "contrib-title", `matched terms: query weight × document weight${more}`));
      const box = el("div", "bars contributions");
      bars(box, hit.explain.terms.slice(0, MAX_BARS), (t) => t.product,
           (t) => `${t.token}: ${t.query_weight.toFixed(3)} × ${t.doc_weight.toFixed(3)} = ${t.product.toFixed(4)}`
                  + (t.expansion ? " (expansion)" : ""));
      item.appendChild(box);
    }
    results.appendChild(item);
  }
}

async function search(pushHistory) {
  const q = qInput.value.trim();
  if (!q) return;
  const index = indexSelect.value;
  const k = Number(kSelect.value);
  if (pushHistory) {
    const url = new URLSearchParams({ q, index, k: String(k) });
    if (apiKey) url.set("api_key", apiKey);
    history.pushState(null, "", `?${url}`);
  }
  statusLine.className = "";
  statusLine.textContent = "Searching…";
  const started = performance.now();
  try {
    const body = await api("search", { method: "POST", body: JSON.stringify({ q, index, k, explain: true }) });
    const elapsed = performance.now() - started;
    const result = body.results[0];
    statusLine.textContent = `${result.hits.length} results from ${body.index} in ${elapsed.toFixed(1)} ms ` +
                             `(search ${body.search_ms.toFixed(2)} ms on the server)`;
    showQuery(result);
    showHits(result);
  } catch (error) {
    statusLine.className = "error";
    statusLine.textContent = error.message;
    queryPanel.hidden = true;
    results.replaceChildren();
  }
}

function fromUrl() {
  const p = new URLSearchParams(location.search);
  qInput.value = p.get("q") || "";
  if (p.get("index")) indexSelect.value = p.get("index");
  const k = p.get("k");
  if (k && ![...kSelect.options].some((o) => o.value === k)) {
    const option = el("option", "", `${k} hits`);
    option.value = k;
    kSelect.appendChild(option);
  }
  if (k) kSelect.value = k;
  if (qInput.value) search(false);
}

form.addEventListener("submit", (event) => { event.preventDefault(); search(true); });
window.addEventListener("popstate", fromUrl);

api("indexes").then((body) => {
  for (const info of body.indexes) {
    const option = el("option", "", `${info.name} (${info.index_type}, ${info.documents} docs)`);
    option.value = info.name;
    indexSelect.appendChild(option);
  }
  indexSelect.value = body.default;
  fromUrl();
}).catch((error) => { statusLine.className = "error"; statusLine.textContent = error.message; });
