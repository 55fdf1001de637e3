"""Run every benchmark script and collect their results into ``benchmarks/results/README.md``.

Usage::

    python benchmarks/run_all.py                                  # every benchmarks/*.py but this one, then collect
    python benchmarks/run_all.py --only render_speed,method_speed # some of them
    python benchmarks/run_all.py --skip studio_speed
    python benchmarks/run_all.py --collect-only                   # rebuild README.md from the results there
    python benchmarks/run_all.py --list

Each script runs in its own process, with this Python, from the repository root and with
its default arguments (the full targets; the scripts document them), one after the other
so that they do not time each other. By convention a script writes its markdown to
``benchmarks/results/<topic>.md``; what each run wrote is found by comparing the results
folder before and after it. Its output goes to ``LOGS/<script>.log`` (``--logs``, default
``runs/benchmarks``, outside the repository's tracked files).

``README.md`` then holds a table of the runs of this call (exit status, wall time, files
written) and every results file in name order, its headings pushed down one level. The
exit status is 1 if a script failed or timed out, else 0.
"""

from __future__ import annotations

import argparse
import datetime
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
README = "README.md"


@dataclass(frozen=True)
class Run:
    """One script's run: its name, exit status (None: timed out), wall time and the results it wrote."""

    script: str
    returncode: int | None
    seconds: float
    wrote: tuple[str, ...]


def scripts(folder: Path) -> list[Path]:
    """The benchmark scripts of ``folder``: every ``*.py`` but this runner, by name."""
    return sorted(p for p in folder.glob("*.py") if p.name != Path(__file__).name and not p.name.startswith("_"))


def _snapshot(results: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in results.glob("*.md") if p.name != README}


def run_script(script: Path, results: Path, logs: Path, cwd: Path, timeout_s: float | None) -> Run:
    """Run one script, logging its output; returns what happened."""
    before = _snapshot(results)
    logs.mkdir(parents=True, exist_ok=True)
    began = time.perf_counter()
    with open(logs / f"{script.stem}.log", "w") as log:
        try:
            code: int | None = subprocess.run([sys.executable, str(script)], cwd=cwd, stdout=log,
                                              stderr=subprocess.STDOUT, timeout=timeout_s).returncode
        except subprocess.TimeoutExpired:
            code = None
    after = _snapshot(results)
    wrote = tuple(sorted(name for name, mtime in after.items() if before.get(name) != mtime))
    return Run(script.name, code, time.perf_counter() - began, wrote)


def _shift_headings(text: str) -> list[str]:
    """Markdown lines with every heading one level deeper (code blocks left alone)."""
    lines, fenced = [], False
    for line in text.rstrip().splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
        lines.append("#" + line if not fenced and line.startswith("#") else line)
    return lines


def collect(results: Path, runs: list[Run]) -> str:
    """The README: this call's runs, then every results file."""
    files = sorted(p for p in results.glob("*.md") if p.name != README)
    now = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    lines = ["# Benchmark results", "",
             f"Collected by `python benchmarks/run_all.py` on {now}. Each section below is one results file, "
             "written by the script and command named in it; the machine and its load are stated there.", ""]
    if runs:
        lines += ["| script | status | wall min | wrote |", "|---|---|---|---|"]
        for run in runs:
            status = "timed out" if run.returncode is None else "ok" if run.returncode == 0 else \
                f"failed (exit {run.returncode})"
            lines.append(f"| {run.script} | {status} | {run.seconds / 60:.1f} | {', '.join(run.wrote) or '-'} |")
        lines.append("")
    lines += ["Results files: " + (", ".join(f"[{p.name}](#{p.stem})" for p in files) or "none") + ".", ""]
    for path in files:
        modified = datetime.datetime.fromtimestamp(path.stat().st_mtime).astimezone().strftime("%Y-%m-%d %H:%M")
        lines += [f'<a id="{path.stem}"></a>', "", f"*{path.name}, written {modified}:*", ""]
        lines += _shift_headings(path.read_text(encoding="utf-8"))
        lines += ["", "---", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="comma-separated script names (with or without .py)")
    parser.add_argument("--skip", help="comma-separated script names to leave out")
    parser.add_argument("--collect-only", action="store_true", help="run nothing; rebuild README.md")
    parser.add_argument("--list", action="store_true", help="list the scripts and exit")
    parser.add_argument("--timeout", type=float, help="seconds allowed per script (default: no limit)")
    parser.add_argument("--scripts", type=Path, default=HERE, help="folder of the scripts (default benchmarks/)")
    parser.add_argument("--logs", type=Path, default=HERE.parent / "runs" / "benchmarks", help="folder for logs")
    args = parser.parse_args(argv)
    found = scripts(args.scripts)
    names = lambda text: {n.strip().removesuffix(".py") for n in (text or "").split(",") if n.strip()}  # noqa: E731
    only, skip = names(args.only), names(args.skip)
    unknown = (only | skip) - {p.stem for p in found}
    if unknown:
        parser.error(f"no such scripts: {', '.join(sorted(unknown))}; found {', '.join(p.stem for p in found)}")
    chosen = [p for p in found if (not only or p.stem in only) and p.stem not in skip]
    if args.list:
        print("\n".join(p.name for p in chosen))
        return 0
    results = args.scripts / "results"
    results.mkdir(exist_ok=True)
    runs = []
    if not args.collect_only:
        for script in chosen:
            print(f"running {script.name} ...", file=sys.stderr, flush=True)
            runs.append(run_script(script, results, args.logs, args.scripts.parent, args.timeout))
            run = runs[-1]
            print(f"  {run.script}: exit {run.returncode}, {run.seconds / 60:.1f} min, wrote "
                  f"{', '.join(run.wrote) or 'nothing'}", file=sys.stderr, flush=True)
    readme = results / README
    tmp = readme.with_name(f".{README}.{os.getpid()}")
    tmp.write_text(collect(results, runs) + "\n", encoding="utf-8")
    os.replace(tmp, readme)
    print(f"wrote {readme}", file=sys.stderr)
    return 0 if all(run.returncode == 0 for run in runs) else 1


if __name__ == "__main__":
    raise SystemExit(main())
