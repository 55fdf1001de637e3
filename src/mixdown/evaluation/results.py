"""The results table of an evaluation: one row per song and method, kept as CSV.

Columns (`COLUMNS`), in order:

* ``song``, ``method``: the row's key;
* ``output``: ``"params"`` (the method proposed console settings, rendered by
  `mixdown.console.render`) or ``"audio"`` (it returned a mix directly);
* ``stems``: the song's stem count; ``seconds``: length of the audio evaluated;
* ``predict_s``, ``render_s``: wall time of the method and of the render (nan for audio
  methods), in seconds;
* ``finished_at``: when the row was computed (UTC, ISO 8601);
* `AUDIO_METRICS`: the keys of `mixdown.metrics.evaluate_mix` (audio distances and signed
  feature differences, estimate minus reference);
* `PARAM_METRICS`: the keys of `mixdown.metrics.summarize_param_errors` (medians over
  channels of the absolute parameter errors), nan when the song has no true settings or
  the method returns audio.

Floats are written with ``repr`` (exact round trip; ``inf`` and ``nan`` as such). Every
append rewrites the file atomically (`mixdown.audio.atomic_write_text`), so a crash leaves
either the old table or the new one, never a half row.
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

from mixdown.audio import atomic_write_text
from mixdown.errors import MixdownError
from mixdown.metrics import FEATURE_NAMES, PARAM_ERROR_NAMES

KEY_COLUMNS = ("song", "method")
INFO_COLUMNS = ("output", "stems", "seconds", "predict_s", "render_s", "finished_at")
AUDIO_METRICS = ("stereo_mrstft", "stereo_mrstft_matched", "mrstft", "si_sdr_db", "loudness_diff_lu",
                 *(f"diff_{n}" for n in FEATURE_NAMES))
"""Keys of `mixdown.metrics.evaluate_mix`, in order."""
PARAM_METRICS = tuple(f"median_{name}" for name in PARAM_ERROR_NAMES)
"""Keys of `mixdown.metrics.summarize_param_errors`, in order."""
COLUMNS = (*KEY_COLUMNS, *INFO_COLUMNS, *AUDIO_METRICS, *PARAM_METRICS)
OUTPUT_KINDS = ("params", "audio")

_TEXT_COLUMNS = {"song", "method", "output", "finished_at"}
_INT_COLUMNS = {"stems"}

Row = dict[str, str | int | float]
"""One row: every name of `COLUMNS` -> its value (str, int or float by column)."""


def check_row(row: Row) -> None:
    """Raise `MixdownError` unless ``row`` holds exactly `COLUMNS` with a known ``output``."""
    if set(row) != set(COLUMNS):
        missing, extra = sorted(set(COLUMNS) - set(row)), sorted(set(row) - set(COLUMNS))
        raise MixdownError(f"a results row must hold the columns of COLUMNS: missing {missing}, extra {extra}")
    if row["output"] not in OUTPUT_KINDS:
        raise MixdownError(f"output must be one of {OUTPUT_KINDS}, got {row['output']!r}")


def _parse(row: dict[str, str], where: str) -> Row:
    parsed: Row = {}
    for name in COLUMNS:
        text = row[name]
        try:
            parsed[name] = text if name in _TEXT_COLUMNS else int(text) if name in _INT_COLUMNS else float(text)
        except ValueError:
            raise MixdownError(f"{where}: column {name} holds {text!r}, not a number") from None
    return parsed


class ResultsTable:
    """The rows of ``metrics.csv``, loaded if the file exists and rewritten on each append.

    Args:
        path: The CSV file (need not exist yet).

    Attributes:
        path: The CSV file.
        rows: Every row, in the order they were appended.

    Raises:
        MixdownError: If the file exists but is not a results table of these columns, or
            holds a key twice.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.rows: list[Row] = []
        if not self.path.exists():
            return
        try:
            text = self.path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise MixdownError(f"{self.path}: cannot read the results ({exc})") from None
        reader = csv.DictReader(io.StringIO(text))
        if tuple(reader.fieldnames or ()) != COLUMNS:
            raise MixdownError(f"{self.path} is not a results table of this mixdown version (its columns differ); "
                               "use a new output folder")
        for line, row in enumerate(reader, start=2):
            self.rows.append(_parse(row, f"{self.path} line {line}"))
        keys = [(row["song"], row["method"]) for row in self.rows]
        if len(set(keys)) != len(keys):
            raise MixdownError(f"{self.path} holds a song and method twice; use a new output folder")

    def done(self) -> set[tuple[str, str]]:
        """``(song, method)`` of every row."""
        return {(str(row["song"]), str(row["method"])) for row in self.rows}

    def get(self, song: str, method: str) -> Row | None:
        """The row of ``song`` and ``method``, or None."""
        return next((row for row in self.rows if row["song"] == song and row["method"] == method), None)

    def append(self, rows: list[Row]) -> None:
        """Add rows and rewrite the file atomically.

        Raises:
            MixdownError: If a row lacks or adds columns, or its key is already there.
        """
        done = self.done()
        for row in rows:
            check_row(row)
            key = (str(row["song"]), str(row["method"]))
            if key in done:
                raise MixdownError(f"results already hold song {key[0]} with method {key[1]}")
            done.add(key)
        self.rows.extend(rows)
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows({name: repr(v) if isinstance(v, float) else v for name, v in row.items()}
                         for row in self.rows)
        try:
            atomic_write_text(self.path, buffer.getvalue())
        except OSError as exc:
            raise MixdownError(f"{self.path}: cannot write the results ({exc.strerror or exc})") from None
