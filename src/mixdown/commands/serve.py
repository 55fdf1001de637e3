"""``mixdown serve``: the mixing studio in the browser."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from mixdown.errors import MixdownError

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765


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
    serve.add_argument("--allowed-host", action="append", default=[], metavar="NAME",
                       help="a host name the page may be opened under (repeatable; loopback names always work on "
                            "a loopback --host; on 0.0.0.0 any name is accepted unless some are given)")


def _cmd_serve(args: argparse.Namespace) -> None:
    from mixdown.cli import err

    try:
        import uvicorn  # noqa: F401  (checked here for the message; mixdown.web.common.serve runs it)

        from mixdown.web.common import PART_OVERHEAD_BYTES, allowed_hosts_for, bind_socket, is_loopback, serve
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
    # per request: the per-file cap times the files (uploads are also refused as soon as the
    # files received so far pass it, see mixdown.web.common.BodySizeLimit)
    config = StudioConfig(data_dir=data_dir, root=args.root.resolve() if args.root else None,
                          max_stems=args.max_stems, max_file_bytes=max_file,
                          max_request_bytes=(max_file + PART_OVERHEAD_BYTES) * args.max_stems + PART_OVERHEAD_BYTES)
    loopback = is_loopback(args.host)
    app = create_app(config, allowed_hosts=allowed_hosts_for(args.host, args.allowed_host))
    sock = bind_socket(args.host, args.port)
    if not loopback:
        err.print(f"warning: serving on {args.host}: anyone who can reach this machine can use the studio",
                  markup=False)
    host = f"[{args.host}]" if ":" in args.host else args.host
    err.print(f"mixing studio at http://{host}:{args.port}/ (Ctrl+C to stop); sessions in {data_dir}", markup=False)
    serve(app, sock)
