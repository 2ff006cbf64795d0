"""``remit audit``: the audit log and its chain."""

from __future__ import annotations

from typing import Annotated

import typer

from remit.cli.common import (
    console,
    fail,
    open_db,
    table,
    unit,
)

audit_app = typer.Typer(help="The audit log.", no_args_is_help=True)


@audit_app.command("history")
def audit_history(
    user: Annotated[str, typer.Argument(metavar="UPN", help="the user whose history to read")],
) -> None:
    """A user's access history from the audit log, oldest first: requests, decisions,
    assignments, deliveries and removals (the events you may read)."""
    from remit.audit.queries import history

    with unit(write=False) as ctx:
        found = history(ctx, user)
        table(
            f"History of {found.user_principal_name}",
            ["When", "Activity", "By", "About", "Catalog"],
            [
                (
                    h.event.occurred_at.isoformat(timespec="seconds"),
                    h.event.activity,
                    h.event.actor_name,
                    h.event.target_name or h.event.target_id,
                    h.catalog_name,
                )
                for h in found.entries
            ],
        )


@audit_app.command("verify")
def audit_verify() -> None:
    """Check the audit hash chain end to end."""
    from remit.audit.chain import verify

    db = open_db()
    try:
        with db.read() as conn:
            result = verify(conn)
    except Exception as exc:
        fail(f"cannot read the audit log: {str(exc).splitlines()[0]}")
    finally:
        db.dispose()
    if result.ok:
        console.print(
            f"audit chain OK: {result.events} events, head seq {result.head_seq} "
            f"hash {result.head_hash}",
            highlight=False,
        )
        return
    for problem in result.problems:
        console.print(f"[red]{problem}[/red]", highlight=False)
    fail(f"audit chain BROKEN: {len(result.problems)} problem(s) in {result.events} events")


def register(app: typer.Typer) -> None:
    app.add_typer(audit_app, name="audit")
