"""The ``remit`` command (``python -m remit``): the CLI, plus ``serve``, which joins the API to it.

``serve`` lives here, above both adapters, because the CLI does not import the API's wiring
(adapters never import each other); the API is imported only when ``serve`` runs, so that every
other command starts without it.
"""

from __future__ import annotations

import os
from typing import Annotated

import typer

from remit.cli import jobs as jobs_cli
from remit.cli.common import BUSY_EXIT, console, err_console, fail, open_db
from remit.cli.common import settings as cli_settings
from remit.cli.main import app as cli
from remit.errors import Busy


@cli.command()
def serve(
    host: Annotated[str | None, typer.Option(help="default: REMIT_HOST")] = None,
    port: Annotated[int | None, typer.Option(help="default: REMIT_PORT")] = None,
    demo: Annotated[
        bool, typer.Option(help="load the demo tenant if the database is empty")
    ] = False,
    workers: Annotated[
        int | None,
        typer.Option(
            min=1,
            max=256,
            envvar="REMIT_WORKERS",
            help="API processes (default: the CPUs it may use on PostgreSQL, 1 on SQLite)",
        ),
    ] = None,
) -> None:
    """Serve the API (upgrading the embedded SQLite database first).

    With more than one worker, this process does the start-up work once, runs the job worker
    (unless REMIT_WORKER_IN_PROCESS=false) and watches the API processes, which build their
    app from the same environment (docs/decisions/0030).
    """
    import uvicorn

    from remit import bootstrap, logs
    from remit.api.server import uvicorn_options
    from remit.app import create_app
    from remit.notify.sealed import KeyMismatch
    from remit.tokens import load_or_create_key

    s = cli_settings()
    logs.configure(s.log_level)
    processes = workers or (1 if s.is_sqlite else len(os.sched_getaffinity(0)))
    if processes > 1 and s.is_sqlite:
        err_console.print(
            f"remit: warning: {processes} processes on SQLite: their writers wait on each other "
            "for the database's one write lock (PostgreSQL serves several processes better)",
            highlight=False,
            markup=False,
        )
    db = open_db(s)
    try:
        if s.is_sqlite:
            bootstrap.upgrade(db)
        else:
            bootstrap.ensure_builtins(db)
    except KeyMismatch as exc:
        fail(str(exc))
    except Busy as exc:
        fail(exc.message, BUSY_EXIT)
    host, port = host or s.host, port or s.port
    if demo:
        from remit.demo import load_if_empty, sign_in_names

        if load_if_empty(db):
            console.print("[green]demo tenant loaded[/green]")
        _print_sign_ins(sign_in_names(), host, port)
    with jobs_cli.in_process_worker(s, db):
        if processes == 1:
            uvicorn.run(
                create_app(s, db=db),
                host=host,
                port=port,
                log_level=s.log_level,
                # httptools with a bounded request head, no server banner (api/server.py).
                **uvicorn_options(s),
            )
            return
        # The signing key exists before the workers start, so that none of them makes one.
        load_or_create_key(s.data_dir)
        uvicorn.run(
            "remit.app:app_of_environment",
            factory=True,
            workers=processes,
            host=host,
            port=port,
            log_level=s.log_level,
            **uvicorn_options(s, workers=processes),
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
