// One investigation's page: what was asked, by whom, its findings as pictures, and its approval.
import { useEffect, useRef, useState } from "preact/hooks";
import { api, html, seconds, Time } from "./lib.js";
import { Turn } from "./chat.js";
import { applyReport, follow, newTurn } from "./run.js";

export function InvestigationView({ id, me, info }) {
  const [doc, setDoc] = useState(null);
  const [error, setError] = useState(null);
  const [, setN] = useState(0);
  const turn = useRef(null);

  useEffect(() => {
    let alive = true;
    const render = () => alive && setN((n) => n + 1);
    setDoc(null);
    setError(null);
    api(`/investigations/${encodeURIComponent(id)}`)
      .then(async (d) => {
        if (!alive) return;
        const t = newTurn(d.chat_thread, d.request);
        t.investigationId = d.id;
        applyReport(t, d);
        if (d.answer) t.messages.push({ id: "answer", text: d.answer, done: true });
        t.status = d.status === "failed" ? "error" : ["queued", "investigating"].includes(d.status) ? "running" : "done";
        t.error = d.error;
        turn.current = t;
        setDoc(d);
        if (t.status === "running") {
          await follow(t, render);
          const again = await api(`/investigations/${encodeURIComponent(id)}`);
          if (alive) setDoc(again);
        }
      })
      .catch((e) => alive && setError(e.status === 404 ? `No investigation ${id}.` : e.message));
    return () => {
      alive = false;
    };
  }, [id]);

  if (error) return html`<section class="page"><p class="error">${error}</p></section>`;
  if (!doc || !turn.current) return html`<section class="page"><p class="muted">Loading ${id}…</p></section>`;
  return html`<section class="page investigation-page">
    <h2>Investigation <code>${doc.id}</code> <span class=${"badge status " + doc.status}>${doc.status.replace("_", " ")}</span></h2>
    <dl class="meta">
      <dt>${doc.kind === "alert" ? "Alert" : "Question"}</dt><dd>${doc.request}</dd>
      <dt>Requested by</dt><dd>${doc.requester} <span class="muted">(${doc.origin})</span></dd>
      <dt>Started</dt><dd><${Time} value=${doc.started_at || doc.created_at} /></dd>
      ${doc.finished_at && html`<dt>Took</dt><dd>${seconds(doc.timings?.seconds)} <span class="muted">(finished <${Time} value=${doc.finished_at} />)</span></dd>`}
      ${doc.route?.length > 0 && html`<dt>Specialists</dt><dd>${doc.route.join(", ")}</dd>`}
      <dt>Model</dt><dd>${doc.model || "none"}</dd>
      ${doc.chat_thread && html`<dt>Thread</dt><dd><a href=${"#/chat/" + encodeURIComponent(doc.chat_thread)}>reopen the chat thread</a></dd>`}
    </dl>
    <${Turn} turn=${turn.current} me=${me} info=${info} showQuestion=${false} />
  </section>`;
}
