// An investigation's report: findings (each with its pictures and evidence rows), citations, notes.
import { html } from "./lib.js";
import { Picture } from "./pictures.js";

const COLUMNS = 12;

export function RowsTable({ rows }) {
  if (!rows || rows.length === 0) return html`<p class="muted">No rows.</p>`;
  const cols = [];
  for (const r of rows) for (const k of Object.keys(r)) if (!cols.includes(k)) cols.push(k);
  const shown = cols.slice(0, COLUMNS);
  return html`<div class="scroll"><table class="rows">
    <thead><tr>${shown.map((c) => html`<th key=${c}>${c}</th>`)}</tr></thead>
    <tbody>${rows.map((r, i) => html`<tr key=${i}>${shown.map((c) => html`<td key=${c}>${cell(r[c])}</td>`)}</tr>`)}</tbody>
  </table></div>
  ${cols.length > COLUMNS && html`<p class="muted small">${cols.length - COLUMNS} more columns: ${cols.slice(COLUMNS).join(", ")}</p>`}`;
}

function cell(v) {
  if (v == null) return html`<span class="muted">—</span>`;
  if (typeof v === "number") return Number.isInteger(v) ? String(v) : String(Math.round(v * 1000) / 1000);
  if (typeof v === "boolean") return v ? "yes" : "no";
  if (typeof v === "object") return JSON.stringify(v);
  return String(v);
}

function EvidenceBlock({ refName, report }) {
  const ev = (report.evidence || []).find((e) => e.ref === refName);
  const rows = (report.evidence_rows || {})[refName];
  return html`<div class="evidence" id=${"ev-" + refName}>
    <p><span class="ref">${refName}</span> <code>${ev?.id}</code> ${ev?.summary}
      ${ev?.error && html` <span class="badge critical">${ev.error}</span>`}
      ${ev && rows && ev.rows > rows.length && html` <span class="muted">(first ${rows.length} of ${ev.rows} rows)</span>`}</p>
    ${rows ? html`<${RowsTable} rows=${rows} />` : html`<p class="muted">The rows are not kept for this investigation.</p>`}
  </div>`;
}

export function Finding({ f, report }) {
  const pics = (report.pictures || []).filter((p) => p.finding === f.number);
  return html`<li class=${"finding sev-" + f.severity} data-testid="finding" data-kind=${f.kind} data-severity=${f.severity}>
    <div class="finding-head">
      <span class=${"badge " + f.severity}>${f.severity}</span>
      <span class="finding-title">${f.title}</span>
      <span class="muted small">${f.specialist} · ${f.entity}</span>
      ${(f.evidence_refs || []).map((r) => html`<a class="ref" key=${r} href=${"#ev-" + r} onClick=${(e) => openEvidence(e, r)}>${r}</a>`)}
    </div>
    ${pics.map((p, i) => html`<${Picture} key=${i} pic=${p} />`)}
    <details class="detail">
      <summary>Details and evidence rows</summary>
      ${f.detail && html`<p class="finding-detail">${f.detail}</p>`}
      ${(f.evidence_refs || []).map((r) => html`<${EvidenceBlock} key=${r} refName=${r} report=${report} />`)}
    </details>
  </li>`;
}

// A click on an evidence ref opens its finding's details and scrolls to the rows.
function openEvidence(e, ref) {
  e.preventDefault();
  const li = e.currentTarget.closest("li.finding");
  const details = li && li.querySelector("details.detail");
  if (details) {
    details.open = true;
    const target = details.querySelector("#ev-" + CSS.escape(ref));
    (target || details).scrollIntoView({ behavior: "smooth", block: "nearest" });
  }
}

export function Citations({ report }) {
  const cites = report.citations || [];
  if (cites.length === 0) return null;
  const rows = Object.values(report.evidence_rows || {}).flat();
  return html`<section class="citations">
    <h4>Seen before</h4>
    <ul>${cites.map((c) => {
      const row = rows.find((r) => r.id === c.incident_id && "root_cause" in r) || {};
      const href = c.url || "#incident-" + c.incident_id;
      return html`<li key=${c.incident_id} id=${"incident-" + c.incident_id}>
        <details class="detail">
          <summary><a class="incident" href=${href} data-testid="citation"
              onClick=${(e) => { if (!c.url) { e.preventDefault(); e.currentTarget.closest("details").open ^= true; } }}
            >${c.incident_id}</a> ${c.title} <span class="muted">(similarity ${Number(c.score).toFixed(2)})</span></summary>
          ${row.root_cause && html`<p><b>Root cause:</b> ${row.root_cause}</p>`}
          ${(c.resolution || row.resolution) && html`<p><b>What fixed it:</b> ${c.resolution || row.resolution}</p>`}
        </details>
      </li>`;
    })}</ul>
  </section>`;
}

export function Report({ report }) {
  const findings = (report.findings || []).filter((f) => f.kind !== "similar_incident");
  return html`<div class="report">
    ${findings.length > 0 && html`<ol class="findings">${findings.map((f) => html`<${Finding} key=${f.number} f=${f} report=${report} />`)}</ol>`}
    <${Citations} report=${report} />
    ${(report.notes || []).length > 0 && html`<section class="notes"><h4>Notes</h4><ul>${report.notes.map((n, i) => html`<li key=${i}>${n}</li>`)}</ul></section>`}
  </div>`;
}
