// Approval cards (inline in chat, on investigation pages, on the approvals page) and the queue page.
import { useEffect, useState } from "preact/hooks";
import { api, can, html, sameName, Time, usePoll } from "./lib.js";

// What an action risks, by its kind, until the API states a proposal's risk itself.
const RISK = {
  kill_session: ["high", "ends a database session; its open transaction rolls back"],
  restart_service: ["high", "restarts a service; its requests fail while it starts"],
  failover: ["high", "moves the primary role to another node"],
  scale_out: ["medium", "adds capacity; costs and changes the topology"],
  run_playbook: ["medium", "runs an automation playbook against the target"],
  create_ticket: ["low", "opens a ticket; changes nothing in the estate"],
  page_oncall: ["low", "pages the on-call engineer"],
};

function risk(p) {
  if (p.risk) return [p.risk, p.risk_reason || ""];
  return RISK[p.action] || ["unknown", "no risk known for this action"];
}

const PENDING_POLL_MS = 2500;

export function ApprovalCard({ approval: initial, me, info, onDecided }) {
  const [approval, setApproval] = useState(initial);
  const [comment, setComment] = useState("");
  const [actingAs, setActingAs] = useState(() => localStorage.getItem("opscopilot.approver") || "");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState(null);
  const [result, setResult] = useState(null);
  const pending = approval.status === "pending";

  // the full view (with the evidence it cites), then live while it is pending
  useEffect(() => {
    let alive = true;
    let timer = null;
    const load = async () => {
      try {
        const fresh = await api(`/approvals/${encodeURIComponent(initial.id)}`);
        if (alive) setApproval(fresh);
        if (alive && fresh.status === "pending") timer = setTimeout(load, PENDING_POLL_MS);
      } catch (e) {
        if (alive) timer = setTimeout(load, PENDING_POLL_MS * 2);
      }
    };
    load();
    return () => {
      alive = false;
      clearTimeout(timer);
    };
  }, [initial.id]);

  const noAuth = info && info.authentication === false;
  const decider = noAuth ? actingAs.trim() : me?.name;
  const own = !!decider && sameName(approval.requester, decider);
  let blocked = null;
  if (!can(me, "approver")) blocked = `Deciding needs the approver role; ${me?.name} has role ${me?.role}.`;
  else if (noAuth && !decider) blocked = "This server runs without authentication: say who decides (your name) first.";
  else if (own)
    blocked = `You requested this investigation (as ${approval.requester}), so you cannot approve it: nobody decides on their own request. Another approver must decide.`;

  async function decide(decision) {
    setBusy(true);
    setError(null);
    try {
      const body = { decision, comment, fingerprint: approval.fingerprint };
      if (noAuth) {
        body.approver = decider;
        localStorage.setItem("opscopilot.approver", decider);
      }
      const done = await api(`/approvals/${encodeURIComponent(approval.id)}/decision`, { method: "POST", body });
      setApproval(done.approval);
      setResult(done);
      dispatchEvent(new Event("opscopilot:changed"));
      onDecided && onDecided(done);
    } catch (e) {
      setError(e.message);
    } finally {
      setBusy(false);
    }
  }

  const outcome = result?.outcome || approval.outcome;
  return html`<article class=${"approval-card status-" + approval.status} data-testid="approval-card"
      data-approval=${approval.id} data-status=${approval.status}>
    <header>
      <strong>${pending ? "Approval required" : "Approval"}</strong>
      <span class=${"badge status " + approval.status} data-testid="approval-status">${approval.status}</span>
      <span class=${"badge " + (approval.origin === "live" ? "critical" : "muted")}
        title=${approval.origin === "live" ? "acts on a real system" : "a replayed scenario: nothing real is touched"}>${approval.origin}</span>
      <a class="muted small" href=${"#/investigations/" + approval.investigation_id}>${approval.investigation_id}</a>
    </header>
    ${approval.summary && html`<p class="summary">${approval.summary}</p>`}
    <ul class="proposals">
      ${approval.proposals.map((p, i) => {
        const [level, why] = risk(p);
        return html`<li key=${i}>
          <code class="action">${p.action}</code> <span class="target">${p.target}</span>
          <span class=${"badge risk-" + level} title=${why}>risk: ${level}</span>
          <div class="muted small">${why}</div>
          ${p.reason && html`<div class="reason">${p.reason}</div>`}
          ${p.evidence?.length > 0 && html`<div class="small">evidence: ${p.evidence.map((e) => html`<code key=${e}>${e}</code> `)}</div>`}
        </li>`;
      })}
    </ul>
    ${approval.evidence?.length > 0 && html`<details class="detail"><summary>Evidence cited (${approval.evidence.length})</summary>
      <ul class="small">${approval.evidence.map((e) => html`<li key=${e.id}><span class="ref">${e.ref}</span> ${e.summary}</li>`)}</ul></details>`}
    <p class="meta small">
      Requested by <b>${approval.requester}</b> · <${Time} value=${approval.created_at} />
      ${pending && html` · expires <${Time} value=${approval.expires_at} />`}
      · fingerprint <code title=${approval.fingerprint}>${approval.fingerprint.slice(0, 12)}…</code>
    </p>
    ${pending && html`<div class="decide">
      ${noAuth && html`<label class="small">Deciding as <input value=${actingAs} onInput=${(e) => setActingAs(e.currentTarget.value)}
        placeholder="your name" data-testid="approval-as" /></label>`}
      ${blocked && html`<p class="why-not" data-testid="approval-blocked">${blocked}</p>`}
      <textarea rows="2" placeholder="Comment (why you approve or reject)" value=${comment}
        onInput=${(e) => setComment(e.currentTarget.value)} disabled=${!!blocked || busy} data-testid="approval-comment"></textarea>
      <div class="buttons">
        <button class="approve" data-testid="approval-approve" disabled=${!!blocked || busy} onClick=${() => decide("approve")}>Approve</button>
        <button class="reject" data-testid="approval-reject" disabled=${!!blocked || busy} onClick=${() => decide("reject")}>Reject</button>
      </div>
    </div>`}
    ${!pending && approval.decided_by && html`<p class="decided">
      ${approval.status === "approved" ? "Approved" : approval.status === "rejected" ? "Rejected" : "Decided"} by <b>${approval.decided_by}</b> · <${Time} value=${approval.decided_at} />
      ${approval.comment && html`: “${approval.comment}”`}</p>`}
    ${!pending && !approval.decided_by && html`<p class="decided muted">${approval.status}</p>`}
    ${outcome && html`<p class="outcome" data-testid="approval-outcome"><b>What happened:</b> ${outcome}
      ${result?.investigation_status && html` <span class="muted">(investigation ${result.investigation_status})</span>`}</p>`}
    ${error && html`<p class="error" role="alert">${error}</p>`}
  </article>`;
}

export function ApprovalsView({ me, info }) {
  const [waiting, pErr] = usePoll(() => api("/approvals?status=pending"), 3000);
  const [all] = usePoll(() => api("/approvals?status="), 5000);
  // one card per approval: a decision is final, so a decided copy wins over a stale pending one
  const byId = new Map();
  for (const a of [...(waiting || []), ...(all || [])]) {
    const seen = byId.get(a.id);
    if (!seen || seen.status === "pending") byId.set(a.id, a);
  }
  const pending = waiting && [...byId.values()].filter((a) => a.status === "pending");
  const decided = [...byId.values()].filter((a) => a.status !== "pending").slice(0, 20);
  return html`<section class="page approvals-page">
    <h2>Approvals</h2>
    ${pErr && html`<p class="error">${pErr.message}</p>`}
    <h3>Waiting for a decision ${pending && html`<span class="count">${pending.length}</span>`}</h3>
    ${pending && pending.length === 0 && html`<p class="muted">Nothing waits for a decision.</p>`}
    <div class="cards">${(pending || []).map((a) => html`<${ApprovalCard} key=${a.id} approval=${a} me=${me} info=${info} />`)}</div>
    ${decided.length > 0 && html`<h3>Decided recently</h3>
      <div class="cards">${decided.map((a) => html`<${ApprovalCard} key=${a.id} approval=${a} me=${me} info=${info} />`)}</div>`}
  </section>`;
}
