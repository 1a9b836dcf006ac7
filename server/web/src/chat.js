// Chat: ask in a thread, watch the investigation stream in, reopen earlier threads.
import { useEffect, useRef, useState } from "preact/hooks";
import { api, can, html, newId, Time, usePoll } from "./lib.js";
import { ApprovalCard } from "./approvals.js";
import { Progress } from "./progress.js";
import { Report } from "./report.js";
import { applyReport, loadInto, newTurn, runChat } from "./run.js";

// Turns of every thread opened in this tab, so a run keeps streaming while you look elsewhere.
const threads = new Map();

function useRender() {
  const [, setN] = useState(0);
  const frame = useRef(0);
  return () => {
    if (frame.current) return;
    frame.current = requestAnimationFrame(() => {
      frame.current = 0;
      setN((n) => n + 1);
    });
  };
}

export function explanationOf(turn) {
  if (turn.report?.explanation) return turn.report.explanation;
  const [first, ...rest] = turn.messages;
  if (!first) return "";
  if (rest.length > 0 || !first.done) return first.id === "answer" ? "" : first.text;
  return "";
}

export function answerOf(turn) {
  const last = turn.messages[turn.messages.length - 1];
  if (turn.messages.length >= 2 || (last && last.done)) return last.text;
  return turn.report?.answer || "";
}

function Answer({ turn }) {
  const running = turn.status === "running" || turn.status === "reconnecting";
  const headline = turn.report?.headline;
  const explanation = explanationOf(turn);
  return html`<div class="answer" data-testid="chat-answer" data-state=${running ? "streaming" : turn.status} aria-live="polite">
    ${headline && html`<p class="headline">${headline}</p>`}
    ${explanation && html`<p class="explanation">${explanation}${running && !turn.report ? html`<span class="caret"></span>` : ""}</p>`}
    ${!headline && !explanation && running && html`<p class="muted">Gathering evidence…</p>`}
  </div>`;
}

export function Turn({ turn, me, info, showQuestion = true }) {
  const answer = answerOf(turn);
  return html`<div class="turn" data-turn=${turn.id}>
    ${showQuestion && html`<div class="question"><span class="who">You</span> ${turn.question}</div>`}
    <div class="assistant">
      ${turn.status !== "loading" && html`<${Progress} turn=${turn} />`}
      ${turn.note && html`<p class="note small">${turn.note}</p>`}
      <${Answer} turn=${turn} />
      ${turn.error && html`<p class="error" role="alert">${turn.error}</p>`}
      ${turn.report && html`<${Report} report=${turn.report} />`}
      ${turn.approval && html`<${ApprovalCard} key=${turn.approval.id} approval=${turn.approval} me=${me} info=${info} />`}
      <div class="turn-foot small">
        ${answer && html`<details class="detail"><summary>Full answer as text</summary><pre class="plain">${answer}</pre></details>`}
        ${turn.investigationId && html`<a href=${"#/investigations/" + turn.investigationId}>Investigation ${turn.investigationId}</a>`}
      </div>
    </div>
  </div>`;
}

function ThreadList({ current, onNew, version }) {
  const [list] = usePoll(() => api("/threads?limit=50"), 10000, [current, version]);
  const [wide] = useState(() => matchMedia("(min-width: 761px)").matches);
  return html`<nav class="threads" aria-label="Threads">
    <button class="new-thread" onClick=${onNew}>+ New thread</button>
    <details class="thread-list" open=${wide}>
      <summary>Threads ${list ? `(${list.length})` : ""}</summary>
      <ul>${(list || []).map((t) => html`<li key=${t.id} class=${t.id === current ? "current" : ""}>
        <a href=${"#/chat/" + encodeURIComponent(t.id)} title=${t.title}>${t.title}</a>
        <span class="muted small">${t.requester} · <${Time} value=${t.updated_at} short /></span>
      </li>`)}</ul>
    </details>
  </nav>`;
}

async function reopen(threadId, turns, render) {
  const doc = await api(`/threads/${encodeURIComponent(threadId)}`);
  for (const m of doc.messages.filter((m) => m.role === "user")) {
    if (turns.some((t) => t.runId === m.run_id)) continue;
    const t = newTurn(threadId, m.content);
    t.runId = m.run_id;
    t.status = "loading";
    t.investigationId = m.investigation_id;
    turns.push(t);
  }
  render();
  await Promise.all(turns.filter((t) => t.status === "loading" && t.investigationId).map((t) => loadInto(t, render)));
}

export function ChatView({ me, info, threadId }) {
  const render = useRender();
  const [fresh] = useState(() => newId("thread"));
  const id = threadId || fresh;
  if (!threads.has(id)) threads.set(id, []);
  const turns = threads.get(id);
  const [text, setText] = useState("");
  const [loadError, setLoadError] = useState(null);
  const input = useRef(null);

  useEffect(() => {
    setLoadError(null);
    if (threadId && turns.length === 0) reopen(threadId, turns, render).catch((e) => setLoadError(e.status === 404 ? null : e.message));
    input.current && input.current.focus();
  }, [id]);

  const last = turns[turns.length - 1];
  useEffect(() => {
    // a new question scrolls to the top of its turn, so its answer streams in below it
    const el = last && document.querySelector(`[data-turn="${last.id}"]`);
    if (el) el.scrollIntoView({ block: "start" });
  }, [turns.length]);
  useEffect(() => {
    if (last && last.status !== "running") dispatchEvent(new Event("opscopilot:changed"));
  }, [last?.status]);

  const mayAsk = can(me, "operator");
  const busy = !!last && (last.status === "running" || last.status === "reconnecting");

  function send() {
    const q = text.trim();
    if (!q || !mayAsk || busy) return;
    const turn = newTurn(id, q);
    turns.push(turn);
    setText("");
    if (!threadId) history.replaceState(null, "", "#/chat/" + encodeURIComponent(id));
    render();
    runChat(turn, render).then(render);
  }

  function onKey(e) {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      send();
    }
  }

  return html`<section class="page chat-page">
    <${ThreadList} current=${id} version=${turns.length + ":" + (last?.status || "")} onNew=${() => (location.hash = "#/chat/" + newId("thread"))} />
    <div class="conversation">
      ${turns.length === 0 && !loadError && html`<div class="empty">
        <h2>Ask about ${info?.scope === "live" ? "the live estate" : "the replayed incident"}</h2>
        <p class="muted">${info?.scope === "replay" ? html`Scenario <b>${info.scenario}</b>: ${info.title}. ` : "Questions go to the systems configured in the settings. "}
          The copilot routes your question to its specialists, gathers evidence with read-only tools and proposes a
          remediation that waits for an approver.</p>
        ${info?.scope === "replay" && info?.scenario === "demo-checkout-blocking" && html`<p>Try: <button class="link" onClick=${() => setText("Why is checkout timing out on sql-prod-01?")}>Why is checkout timing out on sql-prod-01?</button></p>`}
      </div>`}
      ${loadError && html`<p class="error">${loadError}</p>`}
      ${turns.map((t) => html`<${Turn} key=${t.id} turn=${t} me=${me} info=${info} />`)}
      <form class="ask" onSubmit=${(e) => { e.preventDefault(); send(); }}>
        <textarea ref=${input} rows="2" data-testid="chat-input" value=${text} disabled=${!mayAsk}
          placeholder=${mayAsk ? "Ask a question (Enter sends, Shift+Enter for a new line)" : ""}
          aria-label="Question" onInput=${(e) => setText(e.currentTarget.value)} onKeyDown=${onKey}></textarea>
        <button type="submit" data-testid="chat-send" disabled=${!mayAsk || busy || !text.trim()}>${busy ? "Running…" : "Send"}</button>
        ${!mayAsk && html`<p class="why-not small">Asking needs the operator role; ${me?.name} has role ${me?.role}.</p>`}
        <p class="scope small muted">Scope: ${info?.scope === "replay" ? html`replayed scenario <b>${info.scenario}</b>` : html`<b>live estate</b>`}</p>
      </form>
    </div>
  </section>`;
}

export { applyReport };
