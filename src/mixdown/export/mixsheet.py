"""The mix sheet: every console setting as a table an engineer reads or a program parses.

Two forms of the same rows:

* `mixsheet_csv`: one row per setting with columns ``section, channel, setting, label,
  value, unit``. ``setting`` is the field's path in the params JSON (``gain_db``,
  ``eq[1].freq_hz``, ``compressor.ratio``, ``master.reverb.decay_s``), so the sheet maps
  back to the settings file; ``label`` says it in words. Switched-off processors appear
  as one row with the value ``off``.
* `mixsheet_text`: an aligned plain-text sheet, one block per channel, then the master.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, fields

from mixdown.params import ChannelParams, CompressorParams, ConsoleParams, ReverbParams

CSV_COLUMNS = ("section", "channel", "setting", "label", "value", "unit")

_COMPRESSOR_LABELS = {"threshold_db": ("threshold", "dB"), "ratio": ("ratio", ":1"), "attack_ms": ("attack", "ms"),
                      "release_ms": ("release", "ms"), "knee_db": ("knee", "dB"), "makeup_db": ("makeup gain", "dB")}
_REVERB_LABELS = {"decay_s": ("reverb decay", "s"), "predelay_ms": ("reverb pre-delay", "ms"),
                  "return_db": ("reverb return", "dB")}


@dataclass(frozen=True)
class SheetRow:
    """One setting: where it lives, what it is called, its value and unit."""

    section: str
    channel: str
    setting: str
    label: str
    value: str
    unit: str


def mixsheet_rows(params: ConsoleParams) -> list[SheetRow]:
    """Every setting of ``params``, channels in order, then the master."""
    rows = [row for ch in params.channels for row in _channel_rows(ch)]
    m = params.master
    master = [("master.gain_db", "master trim", _num(m.gain_db, 2), "dB"),
              ("master.target_lufs", "loudness target", _off_or(m.target_lufs, 1), "LUFS"),
              ("master.ceiling_dbtp", "true-peak ceiling", _off_or(m.ceiling_dbtp, 1), "dBTP")]
    master += [(f"master.reverb.{f.name}", _REVERB_LABELS[f.name][0], _num(getattr(m.reverb, f.name), 3),
                _REVERB_LABELS[f.name][1]) for f in fields(ReverbParams)]
    rows += [SheetRow("master", "", *row) for row in master]
    return rows


def _channel_rows(ch: ChannelParams) -> list[SheetRow]:
    out = [("instrument", "instrument class", ch.instrument, ""),
           ("gain_db", "fader", _num(ch.gain_db, 2), "dB"),
           ("pan", "pan (-1 left .. +1 right)", _num(ch.pan, 3), ""),
           ("mute", "mute", "on" if ch.mute else "off", "")]
    if not ch.eq:
        out.append(("eq", "EQ", "off", ""))
    for k, band in enumerate(ch.eq):
        where, label = f"eq[{k}]", f"EQ band {k + 1}"
        out += [(f"{where}.type", f"{label} type", band.type, ""),
                (f"{where}.freq_hz", f"{label} frequency", _num(band.freq_hz, 1), "Hz"),
                (f"{where}.gain_db", f"{label} gain", _num(band.gain_db, 2), "dB"),
                (f"{where}.q", f"{label} Q", _num(band.q, 3), "")]
    if ch.compressor is None:
        out.append(("compressor", "compressor", "off", ""))
    else:
        out += [(f"compressor.{f.name}", f"compressor {_COMPRESSOR_LABELS[f.name][0]}",
                 _num(getattr(ch.compressor, f.name), 2), _COMPRESSOR_LABELS[f.name][1])
                for f in fields(CompressorParams)]
    out.append(("reverb_send_db", "reverb send", _off_or(ch.reverb_send_db, 2), "dB"))
    return [SheetRow("channel", ch.name, *row) for row in out]


def mixsheet_csv(params: ConsoleParams) -> str:
    """The sheet as CSV text (header row `CSV_COLUMNS`)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for row in mixsheet_rows(params):
        writer.writerow([row.section, row.channel, row.setting, row.label, row.value, row.unit])
    return buffer.getvalue()


def mixsheet_text(params: ConsoleParams) -> str:
    """The sheet as aligned plain text."""
    lines = [f"mixdown mix sheet: method {params.method}, {params.sample_rate} Hz, {len(params.channels)} channels", ""]
    rows = mixsheet_rows(params)
    width = max(len(r.label) for r in rows)
    for title, group in _groups(rows):
        lines.append(title)
        lines += [f"  {r.label:<{width}}  {r.value}{_unit_suffix(r)}" for r in group]
        lines.append("")
    return "\n".join(lines)


def _unit_suffix(row: SheetRow) -> str:
    if not row.unit or row.value == "off":
        return ""
    return row.unit if row.unit.startswith(":") else " " + row.unit


def _groups(rows: list[SheetRow]) -> list[tuple[str, list[SheetRow]]]:
    groups: list[tuple[str, list[SheetRow]]] = []
    for row in rows:
        title = f"channel {row.channel}" if row.section == "channel" else "master"
        if not groups or groups[-1][0] != title:
            groups.append((title, []))
        groups[-1][1].append(row)
    return groups


def _num(value: float, digits: int) -> str:
    return f"{value:.{digits}f}"


def _off_or(value: float | None, digits: int) -> str:
    return "off" if value is None else _num(value, digits)
