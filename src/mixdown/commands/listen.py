"""``mixdown listen``: MUSHRA-style listening tests (create, serve, results)."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console
from rich.table import Table

from mixdown.errors import MixdownError

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``listen create``, ``listen serve`` and ``listen results``."""
    from mixdown.cli import add_command, int_in

    listen = add_command(subparsers, "listen", "MUSHRA-style listening tests: create, serve, results")
    sub = listen.add_subparsers(dest="listen_command", required=True, metavar="ACTION")

    create = add_command(sub, "create", "build a test folder from a YAML config (songs x conditions)",
                         description="Build a listening-test folder from a YAML config (songs x conditions; see "
                                     "mixdown.listening.config). OUTPUT must not exist or be empty; its parent "
                                     "folder must exist.")
    create.set_defaults(handler=_cmd_create)
    create.add_argument("config", type=Path, help="test configuration (YAML; see mixdown.listening.config)")
    create.add_argument("-o", "--output", type=Path, required=True, help="test folder to create")

    serve = add_command(sub, "serve", "run the test's web page for participants")
    serve.set_defaults(handler=_cmd_serve)
    serve.add_argument("test", type=Path, help="test folder")
    serve.add_argument("--host", default=DEFAULT_HOST, help=f"address to bind (default {DEFAULT_HOST}: this machine)")
    serve.add_argument("--port", type=int_in(1, 65535), default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT})")
    serve.add_argument("--allowed-host", action="append", default=[], metavar="NAME",
                       help="a host name participants open the test under (repeatable; loopback names always work "
                            "on a loopback --host; on 0.0.0.0 any name is accepted unless some are given)")

    results = add_command(sub, "results", "screen participants, compute statistics, write CSV, plots, report",
                          description="Screen participants, compute statistics and write CSV files, box plots and "
                                      "report.md into OUTPUT (default TEST/results; created if missing). A rerun "
                                      "replaces the files it wrote before; other files in the folder are kept, and "
                                      "a non-empty folder it did not write is refused unless --force.")
    results.set_defaults(handler=_cmd_results)
    results.add_argument("test", type=Path, help="test folder")
    results.add_argument("-o", "--output", type=Path,
                         help="results folder (default TEST/results; its earlier results are replaced)")
    results.add_argument("--force", action="store_true",
                         help="write into a non-empty folder listen results did not write (its other files are kept)")


def _cmd_create(args: argparse.Namespace) -> None:
    from mixdown.outputs import OutputError, check_folder_writable, check_not_input

    if args.output.exists() and not args.output.is_dir():
        raise OutputError(f"{args.output}: exists and is not a folder")
    check_folder_writable(args.output.parent if str(args.output.parent) else Path("."))
    check_not_input(args.output, [args.config], "test folder")
    from mixdown.cli import err, progress
    from mixdown.listening.build import build_test
    from mixdown.listening.config import load_config

    config = load_config(args.config)
    with progress("preparing excerpts", len(config.songs) * len(config.conditions)) as update:
        manifest = build_test(config, args.output, progress=update)
    err.print(f"wrote {args.output}: {len(manifest.songs)} songs x {len(manifest.conditions)} conditions "
              f"({', '.join(manifest.conditions)}), excerpts at {manifest.target_lufs:g} LUFS; "
              f"run `mixdown listen serve {args.output}`")


def _cmd_serve(args: argparse.Namespace) -> None:
    from mixdown.cli import err

    try:
        import uvicorn  # noqa: F401  (checked here for the message; mixdown.web.common.serve runs it)

        from mixdown.web.common import (
            allowed_hosts_for,
            bind_socket,
            is_loopback,
            serve,
        )
        from mixdown.web.listen.app import create_app
    except ImportError as exc:
        raise MixdownError(f"serving needs the web extra ({exc.name} is missing): pip install 'mixdown[web]'") from None
    if not 0 < args.port < 65536:
        raise MixdownError(f"--port must be between 1 and 65535, got {args.port}")
    app = create_app(args.test, allowed_hosts=allowed_hosts_for(args.host, args.allowed_host))
    sock = bind_socket(args.host, args.port)
    if not is_loopback(args.host):
        err.print(f"warning: serving on {args.host}: anyone who can reach this machine can open the test",
                  markup=False)
    err.print(f"listening test at http://{args.host}:{args.port}/ (Ctrl+C to stop); answers go to "
              f"{args.test / 'responses.sqlite'}", markup=False)
    serve(app, sock)


def _cmd_results(args: argparse.Namespace) -> None:
    from mixdown.cli import err
    from mixdown.listening.results import REPORT_NAME, write_results

    output = args.output if args.output is not None else args.test / "results"
    analysis = write_results(args.test, output, force=args.force)
    title, columns, rows = analysis.console_table()  # MUSHRA summaries, or BS.1116 / AB / ABX results
    table = Table(title=title)
    for column in columns:
        table.add_column(column, justify="left" if column in ("condition", "role", "pair") else "right")
    for row in rows:
        table.add_row(*row)
    Console(highlight=False).print(table)
    err.print(f"wrote {output} ({REPORT_NAME}, CSV files, box plots)", markup=False)
