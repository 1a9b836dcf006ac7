"""`approvals list | approve | reject`: the approval queue from the command line."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

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
                    out.print(
                        f"{a['id']}  {p['action']} {p['target']}  "
                        f"[{a['origin']}, requested by {a['requester']}, {a['investigation_id']}, "
                        f"expires {a['expires_at'][:16]}]\n    why: {cut_quoted(p['reason'], 160)}\n"
                        f"    evidence: {', '.join(p['evidence']) or '-'}  fingerprint: {p['fingerprint']}",
                        markup=False,
                    )
        if reaped:
            out.print(f"({reaped} run(s) whose process ended were marked abandoned)", markup=False)
        svc.store.close()


def _decide(
    approval_id: str,
    decision: str,
    as_: str | None,
    comment: str,
    fingerprint: str | None,
    config: Path | None,
) -> None:
    from server.investigations import DecisionRefused
    from server.principals import Principal

    who = requester(as_)
    settings = load(config)
    with open_service(settings, "none") as svc:
        if svc.store.get_approval(approval_id) is None:
            row = svc.store.approval_for(approval_id, status=None)  # an investigation id works too
            if row is None:
                fail(f"no pending approval {approval_id!r} (see `{OPS} approvals list`)")
            approval_id = row["id"]
        try:
            done = svc.decide_now(
                approval_id,
                decision,
                Principal(name=who, role="admin"),
                comment=comment,
                fingerprint_shown=fingerprint,
            )
        except DecisionRefused as exc:
            fail(str(exc))
        svc.store.close()
    out.print(f"{approval_id}: {done.status} by {who}. {done.answer}", markup=False)


FingerprintOpt = Annotated[
    str | None,
    typer.Option(help="The fingerprint you reviewed (from `approvals list`); refused if it changed."),
]
CommentOpt = Annotated[str, typer.Option(help="Why (recorded with the decision).")]


@approvals_app.command("approve")
def approvals_approve(
    approval_id: Annotated[str, typer.Argument(help="The approval id (apr-...) or its investigation id.")],
    as_: AsOpt = None,
    approver: Annotated[str | None, typer.Option(hidden=True, help="Same as --as.")] = None,
    comment: CommentOpt = "",
    fingerprint: FingerprintOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Approve a pending remediation (resumes the paused investigation from its checkpoint).
    Nobody approves a proposal raised by their own request.

    Example (the id from `approvals list`):

        .venv/bin/opscopilot approvals approve apr-20261122-212011-38db01ab --as alice --comment "batch job"
    """
    _decide(approval_id, "approve", as_ if as_ is not None else approver, comment, fingerprint, config)


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
