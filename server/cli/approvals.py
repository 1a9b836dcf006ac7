"""`approvals list | show | approve | reject`: the approval queue from the command line."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from server.cli.base import OPS, AsOpt, ConfigOpt, approvals_app, fail, load, open_service, out, requester


@approvals_app.command("list")
def approvals_list(
    config: ConfigOpt = None,
    all_: Annotated[
        bool, typer.Option("--all", help="Show every investigation, not only pending approvals.")
    ] = False,
) -> None:
    """List pending approvals (newest first): what, on what, from a replay or a live system, who asked.

    Example:  .venv/bin/opscopilot approvals list --all
    """
    from server.text import cut_quoted

    settings = load(config)
    with open_service(settings) as svc:
        reaped = svc.reap()  # runs whose process ended are marked, not left "investigating"
        if all_:
            rows = svc.list(limit=100)
            for r in rows:
                approval = svc.store.approval_for(r["id"], status=None)
                decided = ""
                if approval and approval.get("decided_by"):
                    decided = (
                        f" {approval['status']} by {approval['decided_by']} at {approval['decided_at'][:19]}"
                    )
                out.print(
                    f"{r['id']}  {r['status']:<18} {r['created_at'][:19]}  {r['origin']:<6} "
                    f"by {r['requester']}"
                    f"{decided}  {r['request'][:70]}",
                    markup=False,
                )
            if not rows:
                out.print("no investigations yet")
        else:
            pending = svc.pending_approvals()
            if not pending:
                out.print("no proposals awaiting approval")
            for a in pending:
                for p in a["proposals"]:
                    risk = f"risk {p['risk']}; {p['risk_reason']}\n    " if p.get("risk") else ""
                    out.print(
                        f"{a['id']}  {p['action']} {p['target']}  "
                        f"[{a['origin']}, requested by {a['requester']}, {a['investigation_id']}, "
                        f"expires {a['expires_at'][:16]}]\n    {risk}why: {cut_quoted(p['reason'], 160)}\n"
                        f"    evidence: {', '.join(p['evidence']) or '-'}  fingerprint: {p['fingerprint']}",
                        markup=False,
                    )
        if reaped:
            out.print(f"({reaped} run(s) whose process ended were marked abandoned)", markup=False)
        svc.store.close()


def _approval_id(svc: Any, approval_id: str) -> str:
    """An approval id, or an investigation id standing for its latest approval."""
    if svc.store.get_approval(approval_id) is not None:
        return approval_id
    row = svc.store.approval_for(approval_id, status=None)
    if row is None:
        fail(f"no pending approval or investigation {approval_id!r} (see `{OPS} approvals list --all`)")
    return str(row["id"])


def _decide(
    approval_id: str,
    decision: str,
    as_: str | None,
    comment: str,
    fingerprint: str | None,
    config: Path | None,
    role: str | None = None,
) -> None:
    from server.cli.base import PROCESS_START
    from server.cli.progress import ProgressPrinter
    from server.events import Clock, RunDone
    from server.investigations import DecisionRefused
    from server.principals import Principal

    who = requester(as_)
    settings = load(config)
    show = ProgressPrinter()
    with open_service(settings, "none") as svc:
        approval_id = _approval_id(svc, approval_id)
        done: Any = None
        try:
            for ev in svc.decide(
                approval_id,
                decision,
                Principal(name=who, role="admin"),
                comment=comment,
                fingerprint_shown=fingerprint,
                role=role,
                clock=Clock(PROCESS_START),
            ):
                show(ev)  # approved, executing, executed, verified ... on stderr
                done = ev.body
        except DecisionRefused as exc:
            fail(str(exc))
        svc.store.close()
    assert isinstance(done, RunDone)
    if done.pending_approval and done.refused:
        fail(f"{approval_id}: the decision was refused: {'; '.join(done.refused)}")
    if done.pending_approval:  # e.g. a second approver is needed
        out.print(f"{approval_id}: {decision} by {who} recorded; still pending. {done.answer}", markup=False)
    else:
        out.print(f"{approval_id}: {done.status} by {who}. {done.answer}", markup=False)


@approvals_app.command("show")
def approvals_show(
    approval_id: Annotated[str, typer.Argument(help="The approval id (apr-...) or its investigation id.")],
    config: ConfigOpt = None,
) -> None:
    """Show one approval exactly as the approver must see it: each action with its structured target
    (every part escaped, with the attributes checked again before it runs), the fingerprint a decision
    binds to, the policy's risk, approvals and roles needed, dry run or not, the expiry; once decided,
    what ran, its result and its verification; and the audit trail.

    Example (the id from `approvals list`):

        .venv/bin/opscopilot approvals show apr-20261122-212011-38db01ab
    """
    from server.cli.audit import audit_line
    from server.text import untrusted
    from server.views import approval_view
    from tools.base import ActionTarget, escape_text

    settings = load(config)
    with open_service(settings, "none") as svc:
        approval_id = _approval_id(svc, approval_id)
        a = svc.store.get_approval(approval_id) or {}
        entries = list(svc.actions().audit.entries(a["investigation_id"]))
        svc.store.close()
    view = approval_view(a)
    out.print(
        f"{a['id']}: {a['status']}; investigation {a['investigation_id']} ({a['origin']}), requested by "
        f"{a['requester']}; expires {a['expires_at'][:19]}",
        markup=False,
    )
    out.print(f"  {escape_text(view['summary'])}", markup=False)
    out.print(f"  approval fingerprint {a['fingerprint']} (over the proposals' own)", markup=False)
    for i, (raw, p) in enumerate(zip(a["proposals"], view["proposals"], strict=True), start=1):
        ref = raw.get("target_ref")
        target = ActionTarget.model_validate(ref).render(attrs=True) if ref else p["target"]
        out.print(f"\n[{i}] {p['action']} {target}", markup=False)
        out.print(f"    fingerprint {p['fingerprint']}", markup=False)
        out.print(f"    why: {escape_text(p['reason'])}", markup=False)
        out.print(f"    evidence: {', '.join(escape_text(e) for e in p['evidence']) or '-'}", markup=False)
        if p.get("risk"):
            approvals = ", ".join(p["approvals"]) or "none yet"
            out.print(
                f"    risk {p['risk']}: {p['risk_reason']}; approvals so far: {approvals}", markup=False
            )
        if p.get("state"):
            out.print(f"    state: {p['state']}", markup=False)
        if p.get("result"):
            out.print(f"    result: {p['result']['outcome']}: {p['result']['detail']}", markup=False)
            for step in p["result"]["tried"]:
                out.print(f"      tried: {step}", markup=False)
        if p.get("verification"):
            out.print(f"    verification: {p['verification']['summary']}", markup=False)
    if a.get("decided_by"):
        out.print(f"\ndecided: {a['status']} by {a['decided_by']} at {a['decided_at'][:19]}", markup=False)
    if a.get("outcome"):
        out.print(f"outcome: {untrusted(a['outcome'], 2000)}", markup=False)
    if entries:
        out.print("\naudit trail:", markup=False)
        for e in entries:
            out.print("  " + audit_line(e), markup=False)
    if a["status"] == "pending":
        out.print(
            f"\nApprove with:  {OPS} approvals approve {a['id']} --as YOUR_NAME [--role ROLE] "
            f"--fingerprint {a['fingerprint']}",
            markup=False,
        )


FingerprintOpt = Annotated[
    str | None,
    typer.Option(help="The fingerprint you reviewed (from `approvals list`); refused if it changed."),
]
CommentOpt = Annotated[str, typer.Option(help="Why (recorded with the decision).")]
RoleOpt = Annotated[
    str | None,
    typer.Option(help="A policy role you approve in (config/policy.yaml `roles`); it must be yours there."),
]


@approvals_app.command("approve")
def approvals_approve(
    approval_id: Annotated[str, typer.Argument(help="The approval id (apr-...) or its investigation id.")],
    as_: AsOpt = None,
    approver: Annotated[str | None, typer.Option(hidden=True, help="Same as --as.")] = None,
    comment: CommentOpt = "",
    fingerprint: FingerprintOpt = None,
    role: RoleOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Approve a pending remediation: resumes the paused investigation from its checkpoint, and the
    remediation policy decides what then happens: a dry run (the default), or the action itself, run
    once and followed by a check that the problem is gone. Nobody approves their own request.

    Example (the id from `approvals list`):

        .venv/bin/opscopilot approvals approve apr-20261122-212011-38db01ab --as alice --comment "batch job"
    """
    _decide(approval_id, "approve", as_ if as_ is not None else approver, comment, fingerprint, config, role)


@approvals_app.command("reject")
def approvals_reject(
    approval_id: Annotated[str, typer.Argument(help="The approval id (apr-...) or its investigation id.")],
    as_: AsOpt = None,
    approver: Annotated[str | None, typer.Option(hidden=True, help="Same as --as.")] = None,
    comment: CommentOpt = "",
    fingerprint: FingerprintOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Reject a pending remediation; nothing is run.

    Example (the id from `approvals list`):

        .venv/bin/opscopilot approvals reject apr-20261122-212011-38db01ab --as alice --comment "not now"
    """
    _decide(approval_id, "reject", as_ if as_ is not None else approver, comment, fingerprint, config)
