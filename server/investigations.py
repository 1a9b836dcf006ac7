"""One investigation lifecycle for every entry point: create, run (streamed), decide (resume), get, list.

The CLI, the HTTP routes and the workers call this module; none of them builds the graph or a
checkpointer. One `Investigations` per process holds the long-lived parts (graph, checkpointer,
model, source clients); everything about one run lives in the store row and the graph state.
"""

from __future__ import annotations

import builtins
import hashlib
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from agents.llm import ModelHandle
from graphs.context import Context
from graphs.remediation import ActionRuntime
from server import pictures, runtime
from server.decisions import DecisionRefused, Decisions, open_approval, record_auto_approval
from server.events import ApprovalRequired, Clock, Event, RunDone, RunFailed, RunStarted, stream_events
from server.observability import current_investigation
from server.principals import Principal
from server.settings import Settings
from server.store import Store, new_id, utcnow
from server.views import approval_request_view, approval_view, investigation_view
from tools.owners import owner_alive, owner_id
from tools.sources import Sources

log = logging.getLogger(__name__)

PROMPTS = Path(__file__).resolve().parent.parent / "prompts"


class NewInvestigation(BaseModel):
    """What starts an investigation: a question or one normalised alert, and who asked."""

    kind: Literal["question", "alert", "chat"] = "question"
    question: str | None = None
    alert: dict[str, Any] | None = None  # graphs.alerts.Alert as JSON
    requester: str
    source_ref: str = "live"
    now: datetime | None = None
    chat_thread: str | None = None
    earlier: list[dict[str, Any]] = Field(default_factory=list)
    alert_ids: list[str] = Field(default_factory=list)
    investigation_id: str | None = None


def prompt_hashes() -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()[:16] for p in sorted(PROMPTS.glob("*.jinja2"))}


class Investigations:
    """The lifecycle service of one process. Use as a context manager (opens the checkpointer)."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        *,
        model_override: str | None = None,
        on_finished: Callable[[dict[str, Any]], object] | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.model_override = model_override
        self.on_finished = on_finished
        self._stack = ExitStack()
        self._graph: Any = None
        self._model: ModelHandle | None = None
        self._sources: dict[str, Sources] = {}
        self._actions: ActionRuntime | None = None
        self._replay_actions: ActionRuntime | None = None
        self._lock = threading.Lock()
        self.hooks: list[Callable[[str, Event], None]] = []  # metrics, traces, progress feeds
        self._feeds: dict[str, list[queue.Queue[Event | None]]] = {}
        self.decisions = Decisions(self)

    # --- per-process parts ---------------------------------------------------------------------

    def __enter__(self) -> Investigations:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def graph(self) -> Any:
        with self._lock:
            if self._graph is None:
                from graphs.checkpointer import open_checkpointer
                from graphs.copilot import build_graph

                saver = self._stack.enter_context(
                    open_checkpointer(self.settings.checkpoint_url, runtime.checkpoint_path(self.settings))
                )
                self._graph = build_graph(saver)
            return self._graph

    def close(self) -> None:
        self._stack.close()
        self._graph = None
        if self._actions is not None:
            self._actions.close()  # the replay runtime shares its audit log and ledger
            self._actions = self._replay_actions = None

    def actions(self, source_ref: str = "live") -> ActionRuntime:
        """The remediation runtime (policy, audit log, ledger, executors), built once per process. A
        replayed scenario gets the same policy, audit log and ledger with executors that only rehearse
        against the recorded evidence: nothing real is acted on from a recording."""
        from server.actions_wiring import build_action_runtime, knowledge_sink, replay_executors

        with self._lock:
            if self._actions is None:
                self._actions = build_action_runtime(self.settings, knowledge=knowledge_sink(self.settings))
                self._replay_actions = self._actions.for_replay(replay_executors())
            assert self._replay_actions is not None
            return self._actions if source_ref == "live" else self._replay_actions

    def context(self, source_ref: str, model: ModelHandle) -> Context:
        """The run context of one investigation: its sources, the model and the remediation runtime."""
        context = runtime.make_context(self.settings, self.sources(source_ref), model)
        context.actions = self.actions(source_ref)
        return context

    def model(self) -> ModelHandle:
        with self._lock:
            if self._model is None:
                self._model = runtime.open_model(self.settings, self.model_override)
            return self._model

    def sources(self, source_ref: str) -> Sources:
        """The sources a ref names, built once per process: a scenario's world or the live estate."""
        with self._lock:
            if source_ref not in self._sources:
                self._sources[source_ref] = runtime.sources_for_ref(self.settings, source_ref)
            return self._sources[source_ref]

    # --- create ---------------------------------------------------------------------------------

    def create(self, new: NewInvestigation, conn: Any = None, alert: Any = None) -> str:
        """Store a new investigation (status `queued`) with its graph input; returns its id."""
        row = self.prepare(new, alert)
        self.store.add_investigations([row], conn)
        return str(row["id"])

    def prepare(self, new: NewInvestigation, alert: Any = None) -> dict[str, Any]:
        """The store row of a new investigation (nothing written). `alert`: the normalised Alert, when
        the caller has it (saves validating `new.alert` again)."""
        from graphs.alerts import Alert, alert_text
        from graphs.copilot import make_input

        if alert is None and new.alert is not None:
            alert = Alert.model_validate(new.alert)
        graph_input = make_input(
            question=new.question if alert is None else None,
            alert=alert,
            now=new.now,
            source_ref=new.source_ref,
            earlier=new.earlier,
            requester=new.requester,  # the graph's approval rules read it: nobody approves their own
        )
        request = alert_text(alert) if alert is not None else graph_input["question"]
        return self.store.investigation_row(
            id=new.investigation_id or new_id("inv"),
            kind=new.kind,
            request=request[:2000],
            requester=new.requester,
            source_ref=new.source_ref,
            origin="live" if new.source_ref == "live" else "replay",
            graph_input=dict(graph_input),
            chat_thread=new.chat_thread,
            alert_ids=new.alert_ids,
        )

    # --- run ------------------------------------------------------------------------------------

    def stream(self, inv_id: str, clock: Clock | None = None) -> Iterator[Event]:
        """Run a stored investigation, yielding its events; the outcome is recorded in the store.

        The first event is yielded before anything slow (model, sources, graph) is touched."""
        yield from self._published(inv_id, self._run(inv_id, clock or Clock()))

    def _published(self, inv_id: str, events: Iterator[Event]) -> Iterator[Event]:
        """Hand every event to the hooks and to anyone following this investigation's progress."""
        token = current_investigation.set(inv_id)
        try:
            for ev in events:
                for hook in self.hooks:
                    try:
                        hook(inv_id, ev)
                    except Exception:  # an observer must never break a run
                        log.exception("event hook failed")
                for feed in list(self._feeds.get(inv_id, [])):
                    feed.put(ev)
                yield ev
        finally:
            for feed in self._feeds.pop(inv_id, []):
                feed.put(None)
            current_investigation.reset(token)

    def follow(self, inv_id: str) -> queue.Queue[Event | None]:
        """A queue receiving the events of `inv_id` while it runs in this process (None at the end)."""
        feed: queue.Queue[Event | None] = queue.Queue()
        self._feeds.setdefault(inv_id, []).append(feed)
        return feed

    def unfollow(self, inv_id: str, feed: queue.Queue[Event | None]) -> None:
        feeds = self._feeds.get(inv_id, [])
        if feed in feeds:
            feeds.remove(feed)

    def _run(self, inv_id: str, clock: Clock) -> Iterator[Event]:
        row = self.store.get_investigation(inv_id)
        if row is None:
            yield clock(RunFailed(message=f"no investigation {inv_id}", code="not_found"))
            return
        yield clock(RunStarted(investigation_id=inv_id, kind=row["kind"], sources=row["source_ref"]))
        stale_before = time.time() - self.settings.service.claim_timeout_s
        alive = owner_alive(row.get("owner"))
        if alive is False:
            stale_before = time.time() + 1  # its process is gone: take it over now
        elif alive is True and row.get("owner") != owner_id():
            stale_before = 0.0  # its process (on this host) still runs it, however quiet: never twice
        if not self.store.claim_investigation(inv_id, owner_id(), stale_before):
            current = self.store.get_investigation(inv_id) or {}
            yield clock(
                RunFailed(
                    message=f"investigation {inv_id} is {current.get('status')} (not waiting to run)",
                    code="not_runnable",
                )
            )
            return
        started = time.perf_counter()
        try:
            model = self.model()
            context = self.context(row["source_ref"], model)
            before = model.usage.snapshot()
            config = {"configurable": {"thread_id": inv_id}}
            self.store.update_investigation(inv_id, model=model.name if model.available else "none")
            last_beat = time.time()
            beat_s = min(5.0, self.settings.service.claim_timeout_s / 3)
            for ev in stream_events(self.graph, row["graph_input"], config, context, clock):
                if time.time() - last_beat > beat_s:
                    self.store.update_investigation(inv_id, heartbeat_at=time.time())
                    last_beat = time.time()
                if isinstance(ev.body, ApprovalRequired):
                    continue  # announced below, with the approval's id, once it is stored
                yield ev
            done = self._finish(inv_id, model, before, time.perf_counter() - started)
        except Exception as exc:  # our fault: recorded and reported, never a silent stop
            log.exception("investigation %s failed", inv_id)
            self.store.update_investigation(
                inv_id,
                status="failed",
                error=f"{type(exc).__name__}: {exc}",
                finished_at=utcnow(),
                owner=None,
            )
            yield clock(RunFailed(message=f"the investigation failed: {type(exc).__name__}: {exc}"))
            return
        if done.approval_id:
            approval = self.store.get_approval(done.approval_id) or {}
            yield clock(
                ApprovalRequired(
                    request=approval_request_view(approval),
                    interrupt_id=approval.get("interrupt_id") or "",
                    approval_id=done.approval_id,
                    expires_at=approval.get("expires_at"),
                )
            )
        yield clock(done)
        if self.on_finished is not None:
            try:
                self.on_finished(self.get(inv_id) or {})
            except Exception:  # a notification must never fail the investigation
                log.exception("finish hook failed for %s", inv_id)

    def run(self, inv_id: str, on_event: Callable[[Event], None] | None = None) -> RunDone | RunFailed:
        """Run to the end (or the approval gate) and return the last event."""
        last: Any = None
        for ev in self.stream(inv_id):
            if on_event is not None:
                on_event(ev)
            last = ev.body
        assert isinstance(last, RunDone | RunFailed)
        return last

    def _finish(self, inv_id: str, model: ModelHandle, before: dict[str, int], seconds: float) -> RunDone:
        snap = self.graph.get_state({"configurable": {"thread_id": inv_id}})
        values = snap.values or {}
        report = values.get("report") or {}
        report = {**report, **pictures.for_report(values, report)}  # charts and rows for the console
        paused = bool(snap.interrupts)
        status = "awaiting_approval" if paused else (values.get("status") or "done")
        after = model.usage.snapshot()
        tokens = {k: after.get(k, 0) - before.get(k, 0) for k in after if isinstance(after.get(k), int)}
        runs = values.get("specialist_runs", [])
        approval_id = None
        with self.store.tx() as conn:
            self.store.update_investigation(
                inv_id,
                conn,
                status=status,
                headline=report.get("headline", ""),
                answer=values.get("answer", ""),
                report=report,
                route=[p["specialist"] for p in values.get("plan", [])],
                proposals=values.get("proposals", []),
                timings={
                    "seconds": round(seconds, 3),
                    "specialists": {r["specialist"]: r.get("seconds", 0) for r in runs},
                },
                tokens=tokens,
                prompt_hashes=prompt_hashes() if model.available else {},
                finished_at=utcnow(),
                owner=None,
            )
            if paused:
                approval_id = open_approval(self, conn, inv_id, values, snap.interrupts[0].id)
            else:
                record_auto_approval(self, conn, inv_id, values)
        return RunDone(
            investigation_id=inv_id,
            status=status,
            headline=report.get("headline", ""),
            answer=values.get("answer", ""),
            pending_approval=paused,
            approval_id=approval_id,
            report=report,
            tokens={k: v for k, v in tokens.items() if isinstance(v, int)},
        )

    # --- decide (server/decisions.py: the one place where a decision is recorded and the graph resumed)

    def decide(
        self,
        approval_id: str,
        decision: Literal["approve", "reject"],
        by: Principal,
        comment: str = "",
        fingerprint_shown: str | None = None,
        clock: Clock | None = None,
        role: str | None = None,
    ) -> Iterator[Event]:
        """Check who decides and that the proposals are unchanged, record the decision, resume the
        paused graph with `Command(resume=ApprovalDecision(...))` (check, execute, verify), and yield
        the resumed run's events. Raises DecisionRefused (audited) before anything is recorded when a
        rule says no."""
        approval = self.decisions.decidable(approval_id, by, fingerprint_shown, role, decision)
        payload = self.decisions.record(approval, decision, by, comment, role)
        events = self.decisions.resume(approval, payload, clock or Clock())
        return self._published(approval["investigation_id"], events)

    def decide_now(
        self, approval_id: str, decision: Literal["approve", "reject"], by: Principal, **kw: Any
    ) -> RunDone:
        """Decide and wait for the outcome. A decision the graph did not count (it re-checks every rule)
        leaves the approval pending and raises DecisionRefused with the graph's reasons."""
        last: Any = None
        for ev in self.decide(approval_id, decision, by, **kw):
            last = ev.body
        assert isinstance(last, RunDone)
        if last.pending_approval and last.refused:
            raise DecisionRefused("the decision was refused: " + "; ".join(last.refused), 403)
        return last

    def expire_due(self) -> int:
        """Expire pending approvals past their time, through the graph (see server/decisions.py)."""
        return self.decisions.expire_due()

    # --- read -----------------------------------------------------------------------------------

    def reap(self) -> int:
        """Mark runs whose process ended (same host) or went silent as `abandoned`."""
        stale = time.time() - self.settings.service.claim_timeout_s
        n = 0
        for row in self.store.running_investigations():
            alive = owner_alive(row.get("owner"))
            if alive is False or (alive is None and (row.get("heartbeat_at") or 0) < stale):
                self.store.update_investigation(
                    row["id"], status="abandoned", error="its process ended before it finished", owner=None
                )
                n += 1
        return n

    def get(self, inv_id: str) -> dict[str, Any] | None:
        row = self.store.get_investigation(inv_id)
        if row is None:
            return None
        view = investigation_view(row)
        approval = self.store.approval_for(inv_id, status=None)
        view["approval"] = approval_view(approval) if approval else None
        return view

    def list(self, status: str | None = None, limit: int = 50, offset: int = 0) -> list[dict[str, Any]]:
        return [
            investigation_view(r, brief=True) for r in self.store.list_investigations(status, limit, offset)
        ]

    def pending_approvals(self) -> builtins.list[dict[str, Any]]:  # `list` here is the method above
        self.expire_due()
        return [approval_view(a) for a in self.store.list_approvals("pending")]


def run_ephemeral(
    settings: Settings,
    graph_input: dict[str, Any],
    sources: Sources,
    model: ModelHandle,
    on_event: Callable[[Event], None] | None = None,
    clock: Clock | None = None,
) -> dict[str, Any]:
    """Run a graph once in memory (nothing stored, no approval kept): `record` uses it with
    recording sources. Returns the final state values."""
    from langgraph.checkpoint.memory import InMemorySaver

    from graphs.copilot import build_graph

    graph = build_graph(InMemorySaver())
    config = {"configurable": {"thread_id": new_id("record")}}
    context = runtime.make_context(settings, sources, model)
    for ev in stream_events(graph, graph_input, config, context, clock):
        if on_event is not None:
            on_event(ev)
    return dict(graph.get_state(config).values)
