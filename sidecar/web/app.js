// beacongrid sidecar page: lists recent alerts and draws each flow's 24 x 60
// matrix (hour x minute, UTC) as a heatmap with Vega (vendored vega.min.js).
// The API token comes from the URL fragment (#token=...; never sent to a
// server) or the form, and is kept in session storage only.
"use strict";

const CELL_W = 12, CELL_H = 10; // pixels per minute cell (read by the browser test)

function params() {
  const p = new URLSearchParams(location.hash.slice(1));
  if (p.get("token")) {
    sessionStorage.setItem("beacongrid-token", p.get("token"));
    p.delete("token");
    history.replaceState(null, "", location.pathname + location.search + (p.toString() ? "#" + p : ""));
  }
  return { token: sessionStorage.getItem("beacongrid-token"), limit: Number(p.get("limit")) || 20 };
}

// heatmapSpec is the Vega specification of one alert's matrix. Cells with
// no request get a fixed light grey; others a sequential colour by count.
function heatmapSpec(matrix) {
  const values = matrix.map((n, i) => ({ h: Math.floor(i / 60), m: i % 60, n: n }));
  return {
    $schema: "https://vega.github.io/schema/vega/v5.json",
    width: 60 * CELL_W, height: 24 * CELL_H, autosize: "none",
    padding: { left: 48, top: 36, right: 8, bottom: 4 }, // room for the axes
    data: [{ name: "cells", values: values }],
    scales: [
      { name: "x", type: "band", domain: { signal: "sequence(60)" }, range: "width", paddingInner: 0 },
      { name: "y", type: "band", domain: { signal: "sequence(24)" }, range: "height", paddingInner: 0 },
      { name: "color", type: "sqrt", zero: false, nice: false,
        domain: { data: "cells", field: "n" }, domainMin: 1, range: { scheme: "orangered" } },
    ],
    axes: [
      { orient: "top", scale: "x", title: "minute (UTC)", values: [0, 10, 20, 30, 40, 50], labelFontSize: 9 },
      { orient: "left", scale: "y", title: "hour (UTC)", values: [0, 6, 12, 18, 23], labelFontSize: 9 },
    ],
    marks: [{
      type: "rect", name: "cellmarks", from: { data: "cells" },
      encode: { enter: {
        x: { scale: "x", field: "m" }, width: { value: CELL_W - 1 },
        y: { scale: "y", field: "h" }, height: { value: CELL_H - 1 },
        fill: [{ test: "datum.n === 0", value: "#eef1f4" }, { scale: "color", field: "n" }],
        tooltip: { signal: "pad(datum.h, 2) + ':' + pad(datum.m, 2) + ' UTC: ' + datum.n + ' requests'" },
        description: { signal: "'h=' + datum.h + ' m=' + datum.m + ' n=' + datum.n" },
      } },
    }],
  };
}

// decodeMatrix reads beacon.matrix, the run-length string of alert.Matrix
// (docs/alert-schema.md): comma-separated tokens from minute 0, each a
// count ("" is 0) or "count*repeat", filling exactly 1440 minutes. It
// returns the 1440 counts, or null when s is not such a string.
function decodeMatrix(s) {
  if (typeof s !== "string") return null;
  const out = [];
  for (const tok of s.split(",")) {
    const m = /^([1-9][0-9]{0,4})?(?:\*([1-9][0-9]{0,3}))?$/.exec(tok);
    if (!m) return null;
    const n = m[1] === undefined ? 0 : Number(m[1]);
    const k = m[2] === undefined ? 1 : Number(m[2]);
    if (n > 65535 || (m[2] !== undefined && k < 2) || out.length + k > 1440) return null;
    for (let r = 0; r < k; r++) out.push(n);
  }
  return out.length === 1440 ? out : null;
}

function pad(n, w) { return String(n).padStart(w, "0"); }

function field(dl, name, value, cls) {
  const dt = document.createElement("dt"); dt.textContent = name;
  const dd = document.createElement("dd"); dd.textContent = value === undefined || value === "" ? "–" : value;
  if (cls) dd.className = cls;
  dl.append(dt, dd);
}

async function drawAlert(container, a) {
  const card = document.createElement("section");
  card.className = "alert";
  const b = a.beacon || {}, dst = a.destination || {};
  const target = dst.domain || (dst.ip ? dst.ip + ":" + dst.port : "?");
  const h2 = document.createElement("h2");
  h2.textContent = (a.source && a.source.ip) + " → " + target;
  const dl = document.createElement("dl");
  field(dl, "time", a["@timestamp"]);
  field(dl, "score", typeof b.score === "number" ? b.score.toFixed(3) : "");
  field(dl, "severity", a.rule && a.rule.severity, a.rule && a.rule.severity ? "sev-" + a.rule.severity : "");
  field(dl, "period", b.period_s ? b.period_s + " s" : "");
  field(dl, "active minutes", b.active_minutes);
  field(dl, "prevalence", b.prevalence);
  field(dl, "host", a.host && [a.host.name, a.host.owner, a.host.criticality].filter(Boolean).join(" / "));
  field(dl, "threat", a.threat && (a.threat.indicator || []).join(", "));
  field(dl, "rule", a.rule && a.rule.name);
  field(dl, "tags", (a.tags || []).join(", "));
  const bg = a.beacongrid || {};
  field(dl, "destination first seen", bg.destination_first_seen);
  field(dl, "sources alerting on it", bg.destination_sources);
  const hm = document.createElement("div");
  hm.className = "heatmap";
  hm.dataset.id = a.event && a.event.id;
  card.append(h2, dl, hm);
  container.append(card);
  const matrix = decodeMatrix(b.matrix);
  if (!matrix) {
    hm.textContent = "no 24 x 60 matrix in this alert";
    hm.classList.add("error");
    return;
  }
  const view = new vega.View(vega.parse(heatmapSpec(matrix)), { renderer: "svg", container: hm, hover: true });
  await view.runAsync();
  // The page coordinates of minute 00:00's cell: the plot's origin, for
  // tests and tools that read the picture.
  const c0 = hm.querySelector('path[aria-label^="h=0 m=0 "]').getBoundingClientRect();
  hm.dataset.plot = [c0.left + window.scrollX, c0.top + window.scrollY].join(",");
  hm.dataset.cell = CELL_W + "," + CELL_H;
}

async function main() {
  const status = document.getElementById("status");
  const { token, limit } = params();
  const form = document.getElementById("login");
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    sessionStorage.setItem("beacongrid-token", document.getElementById("token").value);
    location.reload();
  });
  if (!token) {
    status.textContent = "Enter the sidecar's web token.";
    form.hidden = false;
    document.body.dataset.state = "login";
    return;
  }
  const res = await fetch("api/alerts?limit=" + limit, { headers: { Authorization: "Bearer " + token } });
  if (!res.ok) {
    status.textContent = "Cannot list alerts: HTTP " + res.status + (res.status === 401 ? " (wrong token)" : "");
    status.className = "error";
    if (res.status === 401) { sessionStorage.removeItem("beacongrid-token"); form.hidden = false; }
    document.body.dataset.state = "error";
    return;
  }
  const alerts = (await res.json()).alerts;
  status.textContent = alerts.length + " most recent alerts delivered by this sidecar, newest first. " +
    "Each heatmap is the flow's requests per minute over the 24 h before the alert (UTC).";
  const container = document.getElementById("alerts");
  for (const a of alerts) await drawAlert(container, a);
  document.body.dataset.state = "ready";
}

main().catch((e) => {
  const s = document.getElementById("status");
  s.textContent = "Error: " + e;
  s.className = "error";
  document.body.dataset.state = "error";
});
