// Received alerts, newest activity first; new ones appear without a reload (the API is polled).
import { useState } from "preact/hooks";
import { api, html, Time, usePoll } from "./lib.js";

export const ALERTS_POLL_MS = 2000;

export function AlertsView() {
  const [status, setStatus] = useState("");
  const [alerts, error] = usePoll(() => api(`/alerts?limit=200${status ? "&status=" + status : ""}`), ALERTS_POLL_MS, [status]);
  return html`<section class="page alerts-page">
    <h2>Alerts
      <select aria-label="status" value=${status} onChange=${(e) => setStatus(e.currentTarget.value)}>
        <option value="">all</option><option value="firing">firing</option><option value="resolved">resolved</option>
      </select>
    </h2>
    ${error && html`<p class="error">${error.message}</p>`}
    ${alerts && alerts.length === 0 && html`<p class="muted">No alerts received yet. Point Alertmanager, Grafana or
      Elastic Watcher at <code>/api/v1/alerts/SOURCE</code>.</p>`}
    ${alerts && alerts.length > 0 && html`<div class="scroll"><table class="alerts">
      <thead><tr><th>severity</th><th>status</th><th>alert</th><th>source</th><th class="num">count</th>
        <th>first seen</th><th>last seen</th><th>investigation</th></tr></thead>
      <tbody>${alerts.map((a) => html`<tr key=${a.id} data-testid="alerts-row" data-alert=${a.id} class=${"st-" + a.status}>
        <td><span class=${"badge " + a.severity}>${a.severity}</span></td>
        <td><span class=${"badge " + (a.status === "firing" ? "critical" : "ok")}>${a.status}</span></td>
        <td><b>${a.name}</b>${a.entity && html` <span class="muted">on ${a.entity}</span>`}
          ${a.summary && html`<div class="small muted">${a.summary}</div>`}</td>
        <td class="muted">${a.source}</td>
        <td class="num" data-label="count ">${a.count}</td>
        <td data-label="first "><${Time} value=${a.first_seen} short /></td>
        <td data-label="last "><${Time} value=${a.last_seen} short /></td>
        <td>${a.investigation_id
          ? html`<a href=${"#/investigations/" + a.investigation_id}>${a.headline || a.investigation_status || a.investigation_id}</a>
              ${a.investigation_status && html` <span class="muted small">(${a.investigation_status.replace("_", " ")})</span>`}`
          : html`<span class="muted">—</span>`}</td>
      </tr>`)}</tbody>
    </table></div>`}
  </section>`;
}
