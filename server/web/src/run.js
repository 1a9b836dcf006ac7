// One question's run: AG-UI events from POST /chat (via @ag-ui/client), and when that stream
// drops, the investigation's own progress stream and finally its stored result: nothing is lost.
import { HttpAgent } from "@ag-ui/client";
import { api, API, newId } from "./lib.js";

export function newTurn(threadId, question) {
  return {
    id: newId("turn"),
    threadId,
    runId: newId("run"),
    question,
    status: "running", // running | reconnecting | done | error | loading
    investigationId: null,
    t0: performance.now(),
    plan: null,
    steps: {}, // name -> {started, seconds, findings, done}
    tools: [], // {id, name, entity, specialist, started, seconds, findings, error}
    messages: [], // assistant text messages in order: the explanation (streamed), then the answer
    report: null,
    approval: null,
    error: null,
    note: null,
  };
}

// --- shared by both streams ----------------------------------------------------------------

function stepStarted(turn, name) {
  turn.steps[name] = { started: performance.now(), seconds: null, done: false };
}

function stepFinished(turn, name, seconds, findings) {
  const s = turn.steps[name] || { started: performance.now() };
  s.done = true;
  s.seconds = seconds ?? (performance.now() - s.started) / 1000;
  if (findings != null) s.findings = findings;
  turn.steps[name] = s;
}

function toolStarted(turn, id, name, entity, specialist) {
  if (turn.tools.some((t) => t.id === id)) return;
  turn.tools.push({ id, name, entity, specialist, started: performance.now(), seconds: null, findings: null, error: null });
}

function toolFinished(turn, match, result) {
  const tool = turn.tools.find(match);
  if (!tool) return;
  tool.seconds = result.seconds ?? (performance.now() - tool.started) / 1000;
  tool.findings = result.findings;
  tool.error = result.error || null;
}

export function applyReport(turn, doc) {
  turn.report = { ...(turn.report || {}), ...doc };
  if (doc.approval) turn.approval = doc.approval;
}

// --- AG-UI chat stream -----------------------------------------------------------------------

export async function runChat(turn, update) {
  const agent = new HttpAgent({ url: `${API}/chat`, threadId: turn.threadId });
  agent.messages = [{ id: newId("msg"), role: "user", content: turn.question }];
  let finished = false;
  const subscriber = {
    onCustomEvent({ event }) {
      const v = event.value || {};
      if (event.name === "opscopilot.investigation") turn.investigationId = v.investigation_id;
      else if (event.name === "opscopilot.plan") turn.plan = v;
      else if (event.name === "opscopilot.report") applyReport(turn, v);
      else if (event.name === "opscopilot.approval_required") turn.approval = v;
      update();
    },
    onStepStartedEvent({ event }) {
      stepStarted(turn, event.stepName);
      update();
    },
    onStepFinishedEvent({ event }) {
      const ran = turn.tools.filter((t) => t.specialist === event.stepName);
      stepFinished(turn, event.stepName, null, ran.reduce((n, t) => n + (t.findings || 0), 0));
      update();
    },
    onToolCallEndEvent({ event, toolCallName, toolCallArgs }) {
      toolStarted(turn, event.toolCallId, toolCallName, toolCallArgs?.entity, toolCallArgs?.specialist);
      update();
    },
    onToolCallResultEvent({ event }) {
      let result = {};
      try {
        result = JSON.parse(event.content);
      } catch {
        result = {};
      }
      toolFinished(turn, (t) => t.id === event.toolCallId, result);
      update();
    },
    onTextMessageStartEvent({ event }) {
      if (!turn.messages.length) turn.explaining = { started: performance.now(), seconds: null };
      turn.messages.push({ id: event.messageId, text: "", done: false });
      update();
    },
    onTextMessageContentEvent({ event }) {
      const m = turn.messages.find((x) => x.id === event.messageId);
      if (m) m.text += event.delta;
      update();
    },
    onTextMessageEndEvent({ event }) {
      const m = turn.messages.find((x) => x.id === event.messageId);
      if (m) m.done = true;
      if (turn.explaining && turn.explaining.seconds == null)
        turn.explaining.seconds = (performance.now() - turn.explaining.started) / 1000;
      update();
    },
    onStateSnapshotEvent({ event }) {
      applyReport(turn, event.snapshot || {});
      update();
    },
    onRunFinishedEvent(params) {
      finished = true;
      if (turn.messages.length < 2) turn.explaining = null; // only the answer came: no model explained
      if (params.outcome === "interrupt" && !turn.approval) {
        const intr = params.interrupts?.[0];
        if (intr?.metadata?.approval) turn.approval = intr.metadata.approval;
      }
      turn.status = "done";
      update();
    },
    onRunErrorEvent({ event }) {
      finished = true;
      turn.status = "error";
      turn.error = event.message;
      update();
    },
  };
  try {
    await agent.runAgent({ runId: turn.runId }, subscriber);
  } catch (err) {
    if (finished) return;
    if (err && /HTTP (4\d\d)/.test(String(err.message)) && !turn.investigationId) {
      turn.status = "error";
      turn.error = await explainHttpError(err);
      update();
      return;
    }
  }
  if (!finished) await resume(turn, update);
}

async function explainHttpError(err) {
  const m = String(err.message || err);
  const status = Number((m.match(/HTTP (\d{3})/) || [])[1]);
  if (status === 401) return "Your session ended: sign in again.";
  if (status === 403) return "Your role may not ask questions here (asking needs the operator role).";
  const detail = m.match(/"detail"\s*:\s*"([^"]+)"/);
  return detail ? detail[1] : m;
}

// --- resume after a dropped stream -----------------------------------------------------------

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export async function resume(turn, update) {
  turn.status = "reconnecting";
  turn.note = "The connection dropped; reconnecting to the investigation…";
  update();
  for (let attempt = 0; !turn.investigationId && attempt < 60; attempt++) {
    try {
      const thread = await api(`/threads/${encodeURIComponent(turn.threadId)}`);
      const msg = thread.messages.find((m) => m.run_id === turn.runId && m.investigation_id);
      if (msg) turn.investigationId = msg.investigation_id;
    } catch {
      // the thread is stored right after the run starts; keep trying while the server comes back
    }
    if (!turn.investigationId) await sleep(Math.min(500 * (attempt + 1), 3000));
  }
  if (!turn.investigationId) {
    turn.status = "error";
    turn.error = "The connection dropped before the investigation was stored; ask again.";
    update();
    return;
  }
  await follow(turn, update);
  turn.note = "Reconnected after the connection dropped: the result below is the stored investigation.";
  update();
}

// Follow a running investigation's progress (SSE; the browser reconnects by itself), then load it.
export function follow(turn, update) {
  return new Promise((resolve) => {
    const url = `${API}/investigations/${encodeURIComponent(turn.investigationId)}/events`;
    const es = new EventSource(url);
    let closed = false;
    const finish = async () => {
      if (closed) return;
      closed = true;
      es.close();
      await loadInto(turn, update);
      resolve();
    };
    const on = (name, fn) =>
      es.addEventListener(name, (e) => {
        try {
          fn(JSON.parse(e.data));
        } catch {
          return;
        }
        update();
      });
    on("plan", (ev) => (turn.plan = ev.body));
    on("specialist_start", (ev) => stepStarted(turn, ev.body.specialist));
    on("specialist_end", (ev) => stepFinished(turn, ev.body.specialist, ev.body.seconds, ev.body.findings));
    on("tool_start", (ev) => {
      const b = ev.body;
      toolStarted(turn, `${b.specialist}/${b.tool}/${b.entity}`, b.tool, b.entity, b.specialist);
    });
    on("tool_end", (ev) => {
      const b = ev.body;
      toolFinished(turn, (t) => t.name === b.tool && t.entity === b.entity && t.specialist === b.specialist && t.seconds == null, b);
    });
    on("explaining", () => {
      turn.explaining = { started: performance.now(), seconds: null };
      turn.messages.push({ id: "explanation", text: "", done: false });
    });
    on("token", (ev) => {
      const m = turn.messages.find((x) => x.id === "explanation");
      if (m) m.text += ev.body.text;
    });
    es.addEventListener("status", finish);
    es.addEventListener("done", finish);
    es.onerror = async () => {
      // not running here any more (finished, or the server restarted): read what was stored
      if (es.readyState === EventSource.CLOSED) await finish();
      else {
        try {
          const doc = await api(`/investigations/${encodeURIComponent(turn.investigationId)}`);
          if (!["queued", "investigating"].includes(doc.status)) await finish();
        } catch {
          // the server is away; EventSource keeps retrying
        }
      }
    };
  });
}

export async function loadInto(turn, update) {
  for (let attempt = 0; attempt < 20; attempt++) {
    try {
      const doc = await api(`/investigations/${encodeURIComponent(turn.investigationId)}`);
      applyReport(turn, doc);
      if (doc.answer && !turn.messages.some((m) => m.id === "answer")) turn.messages.push({ id: "answer", text: doc.answer, done: true });
      if (["queued", "investigating"].includes(doc.status)) {
        turn.status = "running";
        update();
        await sleep(1000);
        continue;
      }
      turn.status = doc.status === "failed" ? "error" : "done";
      if (doc.error) turn.error = doc.error;
      update();
      return doc;
    } catch (e) {
      if (e.status === 404) {
        turn.status = "error";
        turn.error = `No investigation ${turn.investigationId}.`;
        update();
        return null;
      }
      await sleep(1000);
    }
  }
  return null;
}
