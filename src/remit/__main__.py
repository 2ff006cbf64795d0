"""The ``remit`` command (``python -m remit``): the CLI, plus ``serve``, which joins the API to it.

``serve`` lives here, above both adapters, because the CLI does not import the API's wiring
(adapters never import each other); the API is imported only when ``serve`` runs, so that every
other command starts without it.
"""

from __future__ import annotations

from typing import Annotated

import typer

from remit.cli import jobs as jobs_cli
from remit.cli.common import console, fail, open_db
from remit.cli.common import settings as cli_settings
from remit.cli.main import app as cli


@cli.command()
def serve(
    host: Annotated[str | None, typer.Option(help="default: REMIT_HOST")] = None,
    port: Annotated[int | None, typer.Option(help="default: REMIT_PORT")] = None,
    demo: Annotated[
        bool, typer.Option(help="load the demo tenant if the database is empty")
    ] = False,
) -> None:
    """Serve the API (upgrading the embedded SQLite database first)."""
    import uvicorn

    from remit import bootstrap, logs
    from remit.api.server import uvicorn_options
    from remit.app import create_app
    from remit.notify.sealed import KeyMismatch

    s = cli_settings()
    logs.configure(s.log_level)
    db = open_db(s)
    try:
        if s.is_sqlite:
            bootstrap.upgrade(db)
        else:
            bootstrap.ensure_builtins(db)
    except KeyMismatch as exc:
        fail(str(exc))
    if demo:
        from remit.demo import load_if_empty, sign_in_names

        if load_if_empty(db):
            console.print("[green]demo tenant loaded[/green]")
        _print_sign_ins(sign_in_names(), host or s.host, port or s.port)
    with jobs_cli.in_process_worker(s, db):
        uvicorn.run(
            create_app(s, db=db),
            host=host or s.host,
            port=port or s.port,
            log_level=s.log_level,
            # httptools with a bounded request head, no server banner (api/server.py).
            **uvicorn_options(s),
        )


def _print_sign_ins(users: list[tuple[str, str]], host: str, port: int) -> None:
    console.print(
        f"\nremit is serving on http://{host}:{port}  (API under /v1.0, docs at /remit/docs)"
    )
    console.print("Get a bearer token for a demo user (in another terminal):")
    for user_principal_name, name in users:
        console.print(
            f"  .venv/bin/remit token issue --user {user_principal_name:28} # {name}",
            highlight=False,
        )
    console.print(
        "e.g.  TOKEN=$(.venv/bin/remit token issue --user hana@contoso.example | tail -1)\n",
        highlight=False,
    )


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
