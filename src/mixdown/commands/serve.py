"""``mixdown serve``: the mixing studio in the browser."""

from __future__ import annotations

import argparse
import ipaddress
import os
import socket
from pathlib import Path

from mixdown.errors import MixdownError

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
LOOPBACK_HOSTS = ["127.0.0.1", "localhost", "::1", "[::1]"]
MAX_REQUEST_BYTES = 2 * 2**30
"""Largest upload request (all stems together), whatever the per-file limit."""


def default_data_dir() -> Path:
    """``$XDG_DATA_HOME/mixdown/studio`` (``~/.local/share/mixdown/studio`` when unset)."""
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "mixdown" / "studio"


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``serve``."""
    serve = subparsers.add_parser(
        "serve", help="open the mixing studio in the browser (upload stems, edit, A/B, download)",
        description="Serve the mixing studio: upload stems or open a folder, mix them with any method, edit the "
                    "console with live re-rendering, A/B against the model's mix and a reference, download the "
                    "mix, its settings and a REAPER project. Sessions are kept in DATA_DIR.")
    serve.set_defaults(handler=_cmd_serve)
    serve.add_argument("--host", default=DEFAULT_HOST, help=f"address to bind (default {DEFAULT_HOST}: this machine only)")
    serve.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT})")
    serve.add_argument("--data-dir", type=Path, default=None,
                       help=f"where sessions are stored (default {default_data_dir()})")
    serve.add_argument("--root", type=Path, default=None,
                       help="allow opening stem folders under this folder (off by default)")
    serve.add_argument("--max-stems", type=int, default=32, help="most stems per session (default 32)")
    serve.add_argument("--max-upload-mb", type=float, default=200.0, help="largest uploaded file in MiB (default 200)")


def _cmd_serve(args: argparse.Namespace) -> None:
    from mixdown.cli import err

    try:
        import uvicorn

        from mixdown.web.studio.app import create_app
        from mixdown.web.studio.service import StudioConfig
    except ImportError as exc:
        raise MixdownError(f"the studio needs the web extra ({exc.name} is missing): pip install 'mixdown[web]'") from None
    if not 0 < args.port < 65536:
        raise MixdownError(f"--port must be between 1 and 65535, got {args.port}")
    if args.max_stems < 1:
        raise MixdownError(f"--max-stems must be at least 1, got {args.max_stems}")
    if args.max_upload_mb <= 0:
        raise MixdownError(f"--max-upload-mb must be positive, got {args.max_upload_mb:g}")
    if args.root is not None and not args.root.is_dir():
        raise MixdownError(f"--root {args.root}: no such folder")
    data_dir = args.data_dir or default_data_dir()
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise MixdownError(f"--data-dir {data_dir}: cannot create it ({exc.strerror})") from None
    max_file = int(args.max_upload_mb * 2**20)
    config = StudioConfig(data_dir=data_dir, root=args.root.resolve() if args.root else None,
                          max_stems=args.max_stems, max_file_bytes=max_file,
                          max_request_bytes=min(max_file * args.max_stems, MAX_REQUEST_BYTES) + 2**20)
    loopback = is_loopback(args.host)
    app = create_app(config, allowed_hosts=LOOPBACK_HOSTS if loopback else None)
    check_port_free(args.host, args.port)
    if not loopback:
        err.print(f"warning: serving on {args.host}: anyone who can reach this machine can use the studio",
                  markup=False)
    host = f"[{args.host}]" if ":" in args.host else args.host
    err.print(f"mixing studio at http://{host}:{args.port}/ (Ctrl+C to stop); sessions in {data_dir}", markup=False)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")


def is_loopback(host: str) -> bool:
    """Whether ``host`` is this machine only (``localhost`` or a loopback address)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_port_free(host: str, port: int) -> None:
    """Raise a one-line `MixdownError` if ``host:port`` cannot be bound."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise MixdownError(f"cannot listen on {host}:{port} ({exc.strerror}); pick another --port") from None
