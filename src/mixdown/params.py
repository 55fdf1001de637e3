"""Console settings in the units an engineer reads, with ranges, validation and JSON.

`ConsoleParams` is what every mixer outputs and what the console renders. It is the
file a user edits (``mix.params.json``), so every field has a unit suffix (``_db``,
``_hz``, ``_ms``) and every value is range-checked with a message naming the field.

Networks never see these numbers directly: `ParamSpec` maps each one to and from the
normalised interval [0, 1] (linearly, or logarithmically for frequencies and times).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

import torch

from mixdown.errors import ParamsError

SCHEMA_VERSION = 1

EQ_BAND_TYPES = ("highpass", "low_shelf", "peak", "high_shelf", "lowpass")
"""Biquad band types a channel EQ may hold (RBJ Audio-EQ-Cookbook shapes)."""

MAX_EQ_BANDS = 8
MAX_FREQ_FRACTION = 0.49
"""Band frequencies must stay under this fraction of the sample rate (below Nyquist)."""


def clamp_freq_hz(freq_hz: float, sample_rate: int) -> float:
    """``freq_hz`` pulled under the highest band frequency usable at ``sample_rate``."""
    return min(freq_hz, round(0.45 * sample_rate, 1))


@dataclass(frozen=True)
class ParamSpec:
    """Range and scale of one scalar console parameter.

    Attributes:
        name: field name with its unit suffix, e.g. ``"attack_ms"``.
        minimum: smallest accepted value.
        maximum: largest accepted value.
        default: the neutral setting (no processing where one exists).
        scale: ``"log"`` maps to [0, 1] on a logarithmic axis (frequencies, times,
            ratios), ``"linear"`` on a linear one.
    """

    name: str
    minimum: float
    maximum: float
    default: float
    scale: Literal["linear", "log"] = "linear"

    def normalize(self, value: torch.Tensor) -> torch.Tensor:
        """Physical value -> [0, 1]."""
        if self.scale == "log":
            lo, hi = math.log(self.minimum), math.log(self.maximum)
            return (torch.log(value) - lo) / (hi - lo)
        return (value - self.minimum) / (self.maximum - self.minimum)

    def denormalize(self, unit: torch.Tensor) -> torch.Tensor:
        """[0, 1] -> physical value (inputs outside [0, 1] are clamped)."""
        unit = unit.clamp(0.0, 1.0)
        if self.scale == "log":
            lo, hi = math.log(self.minimum), math.log(self.maximum)
            return torch.exp(lo + unit * (hi - lo))
        return self.minimum + unit * (self.maximum - self.minimum)

    def check(self, value: Any, where: str) -> float:
        """Return ``value`` as a float or raise `ParamsError` naming ``where``."""
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ParamsError(f"{where}: expected a number, got {value!r}")
        if not math.isfinite(value):
            raise ParamsError(f"{where}: must be a finite number, got {value!r}")
        if not self.minimum <= value <= self.maximum:
            raise ParamsError(
                f"{where}: {value:g} is outside the range [{self.minimum:g}, {self.maximum:g}]"
            )
        return float(value)


SPECS: dict[str, ParamSpec] = {
    spec.name: spec
    for spec in (
        ParamSpec("gain_db", -80.0, 24.0, 0.0),
        ParamSpec("pan", -1.0, 1.0, 0.0),
        ParamSpec("freq_hz", 10.0, 22000.0, 1000.0, "log"),
        ParamSpec("eq_gain_db", -24.0, 24.0, 0.0),
        ParamSpec("q", 0.1, 18.0, 0.707, "log"),
        ParamSpec("threshold_db", -60.0, 0.0, 0.0),
        ParamSpec("ratio", 1.0, 20.0, 1.0, "log"),
        ParamSpec("attack_ms", 0.1, 200.0, 10.0, "log"),
        ParamSpec("release_ms", 5.0, 2000.0, 100.0, "log"),
        ParamSpec("knee_db", 0.0, 24.0, 6.0),
        ParamSpec("makeup_db", -12.0, 24.0, 0.0),
        ParamSpec("reverb_send_db", -80.0, 6.0, -80.0),
        ParamSpec("target_lufs", -40.0, -5.0, -14.0),
        ParamSpec("ceiling_dbtp", -12.0, 0.0, -1.0),
        ParamSpec("decay_s", 0.1, 8.0, 1.6, "log"),
        ParamSpec("predelay_ms", 0.0, 200.0, 20.0),
        ParamSpec("return_db", -40.0, 12.0, 0.0),
    )
}
"""Every scalar parameter by name. EQ band gain uses ``eq_gain_db``'s range."""


@dataclass
class EQBand:
    """One biquad band. ``gain_db`` is ignored by the pass filters."""

    type: str
    freq_hz: float
    gain_db: float = 0.0
    q: float = 0.707


@dataclass
class CompressorParams:
    """Feed-forward compressor, log-domain soft knee (Giannoulis, Massberg & Reiss 2012)."""

    threshold_db: float = 0.0
    ratio: float = 1.0
    attack_ms: float = 10.0
    release_ms: float = 100.0
    knee_db: float = 6.0
    makeup_db: float = 0.0


@dataclass
class ChannelParams:
    """One channel strip: gain -> EQ -> compressor -> pan, plus a post-fader reverb send.

    ``reverb_send_db = None`` means the send is off (exactly zero).
    """

    name: str
    instrument: str = "other"
    gain_db: float = 0.0
    pan: float = 0.0
    mute: bool = False
    eq: list[EQBand] = field(default_factory=list)
    compressor: CompressorParams | None = None
    reverb_send_db: float | None = None


@dataclass
class ReverbParams:
    """The shared stereo reverb bus (exponentially decaying filtered noise)."""

    decay_s: float = 1.6
    predelay_ms: float = 20.0
    return_db: float = 0.0


@dataclass
class MasterParams:
    """Master bus: gain, optional loudness normalisation, true-peak ceiling.

    ``target_lufs = None`` leaves the loudness alone; ``ceiling_dbtp = None`` turns the
    limiter off.
    """

    gain_db: float = 0.0
    target_lufs: float | None = -14.0
    ceiling_dbtp: float | None = -1.0
    reverb: ReverbParams = field(default_factory=ReverbParams)


@dataclass
class ConsoleParams:
    """Everything the console needs to turn a multitrack into a stereo mix."""

    channels: list[ChannelParams]
    master: MasterParams = field(default_factory=MasterParams)
    sample_rate: int = 44100
    method: str = "manual"
    version: int = SCHEMA_VERSION

    def channel(self, name: str) -> ChannelParams:
        """The channel called ``name``."""
        for ch in self.channels:
            if ch.name == name:
                return ch
        raise ParamsError(f"no channel named {name!r}; channels are {[c.name for c in self.channels]}")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict (the on-disk schema)."""
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2) + "\n"

    @classmethod
    def from_dict(cls, data: Any) -> ConsoleParams:
        """Parse and validate the on-disk schema; raise `ParamsError` naming the field."""
        params = _parse_dataclass(cls, data, "params")
        params.validate()
        return params

    @classmethod
    def from_json(cls, text: str, source: str = "params") -> ConsoleParams:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ParamsError(f"{source}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
        try:
            return cls.from_dict(data)
        except ParamsError as exc:
            raise ParamsError(f"{source}: {exc}") from None

    @classmethod
    def load(cls, path: str | Path) -> ConsoleParams:
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ParamsError(f"{path}: cannot read ({exc})") from None
        # JSON allows NaN/Infinity tokens that are not JSON; reject them by name below.
        return cls.from_json(text, source=str(path))

    def validate(self) -> None:
        """Check every value against its range and the structure; raise `ParamsError`."""
        if self.version != SCHEMA_VERSION:
            raise ParamsError(f"version: {self.version} is not supported (expected {SCHEMA_VERSION})")
        if not isinstance(self.sample_rate, int) or not 8000 <= self.sample_rate <= 192000:
            raise ParamsError(f"sample_rate: {self.sample_rate!r} is not a sample rate in 8000..192000")
        if not self.channels:
            raise ParamsError("channels: at least one channel is needed")
        names = [str(ch.name) for ch in self.channels]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ParamsError(f"channels: duplicate channel names {duplicates}")
        for i, ch in enumerate(self.channels):
            where = f"channels[{i}] ({ch.name})"
            if not isinstance(ch.name, str) or not ch.name:
                raise ParamsError(f"channels[{i}].name: expected a non-empty string, got {ch.name!r}")
            SPECS["gain_db"].check(ch.gain_db, f"{where}.gain_db")
            SPECS["pan"].check(ch.pan, f"{where}.pan")
            if not isinstance(ch.mute, bool):
                raise ParamsError(f"{where}.mute: expected true or false, got {ch.mute!r}")
            if len(ch.eq) > MAX_EQ_BANDS:
                raise ParamsError(f"{where}.eq: {len(ch.eq)} bands; at most {MAX_EQ_BANDS}")
            for k, band in enumerate(ch.eq):
                bwhere = f"{where}.eq[{k}]"
                if band.type not in EQ_BAND_TYPES:
                    raise ParamsError(f"{bwhere}.type: {band.type!r} is not one of {list(EQ_BAND_TYPES)}")
                SPECS["freq_hz"].check(band.freq_hz, f"{bwhere}.freq_hz")
                SPECS["eq_gain_db"].check(band.gain_db, f"{bwhere}.gain_db")
                SPECS["q"].check(band.q, f"{bwhere}.q")
                if band.freq_hz >= MAX_FREQ_FRACTION * self.sample_rate:
                    raise ParamsError(
                        f"{bwhere}.freq_hz: {band.freq_hz:g} Hz is at or above Nyquist "
                        f"for {self.sample_rate} Hz audio"
                    )
            if ch.compressor is not None:
                for f in fields(CompressorParams):
                    SPECS[f.name].check(getattr(ch.compressor, f.name), f"{where}.compressor.{f.name}")
            if ch.reverb_send_db is not None:
                SPECS["reverb_send_db"].check(ch.reverb_send_db, f"{where}.reverb_send_db")
        m = self.master
        SPECS["gain_db"].check(m.gain_db, "master.gain_db")
        if m.target_lufs is not None:
            SPECS["target_lufs"].check(m.target_lufs, "master.target_lufs")
        if m.ceiling_dbtp is not None:
            SPECS["ceiling_dbtp"].check(m.ceiling_dbtp, "master.ceiling_dbtp")
        for f in fields(ReverbParams):
            SPECS[f.name].check(getattr(m.reverb, f.name), f"master.reverb.{f.name}")

    def check_matches(self, names: list[str]) -> None:
        """Raise `ParamsError` unless the channels are exactly the stems ``names`` (any order)."""
        have = {ch.name for ch in self.channels}
        missing = [n for n in names if n not in have]
        extra = sorted(have - set(names))
        if missing or extra:
            parts = []
            if missing:
                parts.append(f"no settings for stems {missing}")
            if extra:
                parts.append(f"settings for unknown stems {extra}")
            raise ParamsError("params do not match the stems: " + "; ".join(parts))

    def ordered_like(self, names: list[str]) -> ConsoleParams:
        """A copy whose channels follow the stem order ``names``."""
        self.check_matches(names)
        by_name = {ch.name: ch for ch in self.channels}
        return ConsoleParams(
            channels=[by_name[n] for n in names],
            master=self.master,
            sample_rate=self.sample_rate,
            method=self.method,
            version=self.version,
        )


def default_channel(name: str, instrument: str = "other") -> ChannelParams:
    """A channel with every processor neutral: renders the stem unchanged (then panned)."""
    return ChannelParams(name=name, instrument=instrument)


_NESTED = {
    "channels": ChannelParams,
    "master": MasterParams,
    "eq": EQBand,
    "compressor": CompressorParams,
    "reverb": ReverbParams,
}
_LIST_KEYS = {"channels", "eq"}
_NULLABLE = {"compressor"}


def _parse_dataclass(cls: type, data: Any, where: str) -> Any:
    """Build dataclass ``cls`` from ``data``, rejecting unknown and missing keys by name."""
    if not isinstance(data, dict):
        raise ParamsError(f"{where}: expected an object, got {type(data).__name__}")
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(set(data) - set(known))
    if unknown:
        paths = ", ".join(f"{where}.{key}" for key in unknown)
        raise ParamsError(f"{paths}: unknown key; expected some of {sorted(known)}")
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        sub = f"{where}.{key}"
        nested = _NESTED.get(key)
        if key in _LIST_KEYS:
            if not isinstance(value, list):
                raise ParamsError(f"{sub}: expected a list, got {type(value).__name__}")
            kwargs[key] = [_parse_dataclass(nested, item, f"{sub}[{i}]") for i, item in enumerate(value)]
        elif nested is None or (value is None and key in _NULLABLE):
            kwargs[key] = value
        else:
            kwargs[key] = _parse_dataclass(nested, value, sub)
    try:
        return cls(**kwargs)
    except TypeError as exc:  # a required field is missing
        raise ParamsError(f"{where}: {exc}") from None
