// Live progress of a run: the plan, each specialist and each tool, with how long they take.
import { useEffect, useState } from "preact/hooks";
import { html, seconds } from "./lib.js";

function useTicker(active, ms = 200) {
  const [, setTick] = useState(0);
  useEffect(() => {
    if (!active) return undefined;
    const id = setInterval(() => setTick((t) => t + 1), ms);
    return () => clearInterval(id);
  }, [active]);
}

const since = (started) => (performance.now() - started) / 1000;

export function Progress({ turn }) {
  const running = turn.status === "running" || turn.status === "reconnecting";
  useTicker(running);
  const specialists = turn.plan?.specialists?.map((s) => s.name) || Object.keys(turn.steps).filter((n) => n !== "plan");
  const elapsed = running ? since(turn.t0) : null;
  if (!running && turn.tools.length === 0 && turn.report?.route) {
    // a stored investigation (reopened thread, investigation page): what ran and how long it took
    const took = turn.report.timings?.seconds;
    return html`<p class="progress muted small" data-testid="progress" data-state=${turn.status}>
      Investigated by ${turn.report.route.join(", ") || "no specialist"}${took != null ? ` in ${seconds(took)}` : ""}</p>`;
  }
  return html`<details class="progress" open=${running} data-testid="progress" data-state=${turn.status}>
    <summary>
      ${running ? html`<span class="spinner" aria-hidden="true"></span>` : ""}
      ${running ? `Investigating… ${seconds(elapsed)}` : `Investigated with ${specialists.length} specialist${specialists.length === 1 ? "" : "s"}, ${turn.tools.length} tool call${turn.tools.length === 1 ? "" : "s"}`}
    </summary>
    ${turn.plan && html`<p class="plan small">
      <b>Plan</b> · entities: ${turn.plan.entities?.length ? turn.plan.entities.map((e) => e.name).join(", ") : "none named"}</p>`}
    <ul class="steps">
      ${specialists.map((name) => {
        const step = turn.steps[name];
        const reasons = turn.plan?.specialists?.find((s) => s.name === name)?.reasons || [];
        const tools = turn.tools.filter((t) => t.specialist === name);
        const state = !step ? "waiting" : step.done ? "done" : "running";
        return html`<li key=${name} class=${"step " + state} data-specialist=${name}>
          <div><span class=${"dot " + state}></span><b>${name}</b>
            <span class="muted small">${state === "running" ? seconds(since(step.started)) : state === "done" ? seconds(step.seconds) : "waiting"}</span>
            ${reasons.length > 0 && html` <span class="muted small reasons">${reasons.join("; ")}</span>`}</div>
          ${tools.length > 0 && html`<ul class="tools">${tools.map((t) => html`<li key=${t.id} class=${t.seconds == null ? "running" : t.error ? "failed" : "done"}>
            <code>${t.name}(${t.entity || ""})</code>
            <span class="muted small">${t.seconds == null ? seconds(since(t.started)) + "…" : seconds(t.seconds)}</span>
            ${t.error ? html` <span class="badge critical">${t.error}</span>` : t.findings != null ? html` <span class="small">${t.findings} finding${t.findings === 1 ? "" : "s"}</span>` : ""}
          </li>`)}</ul>`}
        </li>`;
      })}
      ${turn.explaining && html`<li class=${"step " + (turn.explaining.seconds == null ? "running" : "done")} data-specialist="model">
        <div><span class=${"dot " + (turn.explaining.seconds == null ? "running" : "done")}></span><b>model</b>
          <span class="muted small">${turn.explaining.seconds == null ? seconds(since(turn.explaining.started)) : seconds(turn.explaining.seconds)}</span>
          <span class="muted small reasons">explains the findings (its words are checked against the evidence)</span></div>
      </li>`}
    </ul>
  </details>`;
}
