"""``mixdown listen``: MUSHRA-style listening tests (create, serve, results)."""

from __future__ import annotations

import argparse
import ipaddress
import socket
from pathlib import Path

from rich.console import Console
from rich.table import Table

from mixdown.errors import MixdownError

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``listen create``, ``listen serve`` and ``listen results``."""
    listen = subparsers.add_parser("listen", help="MUSHRA-style listening tests: create, serve, results")
    sub = listen.add_subparsers(dest="listen_command", required=True)

    create = sub.add_parser("create", help="build a test folder from a YAML config (songs x conditions)")
    create.set_defaults(handler=_cmd_create)
    create.add_argument("config", type=Path, help="test configuration (YAML; see mixdown.listening.config)")
    create.add_argument("-o", "--output", type=Path, required=True, help="test folder to create")

    serve = sub.add_parser("serve", help="run the test's web page for participants")
    serve.set_defaults(handler=_cmd_serve)
    serve.add_argument("test", type=Path, help="test folder")
    serve.add_argument("--host", default=DEFAULT_HOST, help=f"address to bind (default {DEFAULT_HOST}: this machine)")
    serve.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT})")

    results = sub.add_parser("results", help="screen participants, compute statistics, write CSV, plots, report")
    results.set_defaults(handler=_cmd_results)
    results.add_argument("test", type=Path, help="test folder")
    results.add_argument("-o", "--output", type=Path, help="results folder (default TEST/results; replaced)")


def _cmd_create(args: argparse.Namespace) -> None:
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
        import uvicorn

        from mixdown.web.listen.app import create_app
    except ImportError as exc:
        raise MixdownError(f"serving needs the web extra ({exc.name} is missing): pip install 'mixdown[web]'") from None
    if not 0 < args.port < 65536:
        raise MixdownError(f"--port must be between 1 and 65535, got {args.port}")
    app = create_app(args.test)
    _check_port_free(args.host, args.port)
    if not _is_loopback(args.host):
        err.print(f"warning: serving on {args.host}: anyone who can reach this machine can open the test",
                  markup=False)
    err.print(f"listening test at http://{args.host}:{args.port}/ (Ctrl+C to stop); answers go to "
              f"{args.test / 'responses.sqlite'}", markup=False)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")


def _cmd_results(args: argparse.Namespace) -> None:
    from mixdown.cli import err
    from mixdown.listening.results import REPORT_NAME, write_results

    output = args.output if args.output is not None else args.test / "results"
    analysis = write_results(args.test, output)
    table = Table(title=f"all songs, {len(analysis.table.participants)} participants kept "
                        f"({len(analysis.excluded)} excluded by post-screening)")
    for column in ("condition", "role", "n", "mean", "median", f"{analysis.confidence:.0%} CI"):
        table.add_column(column, justify="left" if column in ("condition", "role") else "right")
    for name, summary in analysis.overall.items():
        table.add_row(name, analysis.roles[name], str(summary.n), f"{summary.mean:.1f}", f"{summary.median:.1f}",
                      f"[{summary.ci_low:.1f}, {summary.ci_high:.1f}]")
    Console(highlight=False).print(table)
    err.print(f"wrote {output} ({REPORT_NAME}, CSV files, box plots)", markup=False)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_port_free(host: str, port: int) -> None:
    """Raise a clear error where uvicorn would log one and exit the process."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror:
        raise MixdownError(f"--host {host}: unknown address") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            raise MixdownError(f"cannot serve on {host}:{port} ({exc.strerror}); choose another --port") from None
