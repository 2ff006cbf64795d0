"""``remit``: the root command, ``db``, ``demo`` and ``token``.

Each other command group has its own module: ``directory``, ``roles``, ``catalogs``,
``packages``, ``audit``, ``lifecycle``, ``jobs``.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

import typer

from remit.cli import audit as audit_cli
from remit.cli import catalogs as catalogs_cli
from remit.cli import directory as directory_cli
from remit.cli import jobs as jobs_cli
from remit.cli import lifecycle as lifecycle_cli
from remit.cli import packages as packages_cli
from remit.cli import roles as roles_cli
from remit.cli.common import (
    ACTING_AS,
    console,
    fail,
    open_db,
    plain,
    settings,
    unit,
)

app = typer.Typer(
    name="remit",
    help="Delegated access governance: operator commands.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
demo_app = typer.Typer(help="The demo tenant.", no_args_is_help=True)
token_app = typer.Typer(help="Bearer tokens for the API.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(demo_app, name="demo")
directory_cli.register(app)
roles_cli.register(app)
catalogs_cli.register(app)
packages_cli.register(app)
app.add_typer(token_app, name="token")
audit_cli.register(app)
jobs_cli.register(app)
lifecycle_cli.register(app)

AsOption = Annotated[
    str | None,
    typer.Option("--as", help="act as this user (UPN); default: the operator, with full rights"),
]


@app.callback()
def _root(as_: AsOption = None) -> None:
    from remit import logs

    ACTING_AS["upn"] = as_
    # Warnings (a data directory tightened, say) go to stderr, never into a command's output.
    logs.configure(settings().log_level)


# ---------------------------------------------------------------- serve / db / demo


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Bring the database to the current schema."""
    from remit import bootstrap

    s = settings()
    db = open_db(s)
    try:
        bootstrap.upgrade(db)
    except Exception as exc:
        fail(f"upgrade failed: {str(exc).splitlines()[0]}")
    finally:
        db.dispose()
    console.print("database is at the current schema")


@demo_app.command("load")
def demo_load() -> None:
    """Load the demo tenant (contoso.example) into an empty database."""
    from remit.demo import load_if_empty

    db = open_db()
    try:
        loaded = load_if_empty(db)
    finally:
        db.dispose()
    console.print("demo tenant loaded" if loaded else "the database is not empty; nothing loaded")


# ---------------------------------------------------------------- tokens, explain, audit


@token_app.command("issue")
def token_issue(
    user: Annotated[str, typer.Option("--user", help="the user's UPN")],
    ttl: Annotated[int, typer.Option(help="lifetime in seconds", min=60, max=7 * 24 * 3600)] = 3600,
) -> None:
    """Print a bearer token for a user (the token alone on the last line)."""
    from remit.clock import utcnow
    from remit.directory.queries import user_by_upn
    from remit.tokens import TokenService

    s = settings()
    with unit(write=False) as ctx:
        found = user_by_upn(ctx.session, user)
        if found is None:
            fail(f"no user {user}")
        if not found.account_enabled:
            fail(f"user {user} is disabled")
        token = TokenService(s).issue(
            found.id, found.user_principal_name, now=utcnow(), ttl=timedelta(seconds=ttl)
        )
    plain(token)
