"""Console settings in the units an engineer reads: the one parameter schema, validation and JSON.

`ConsoleParams` is what every method outputs and what the console renders. It is the
file a user edits (``mix.params.json``), so every field has a unit suffix (``_db``,
``_hz``, ``_ms``) and every value is range-checked with a message naming the field.

The schema. Each numeric console parameter is declared once, as a `param` field of the
dataclass that holds it; `SCHEMA` walks those dataclasses and lists every parameter, in
order, as a `ParamSpec`: its JSON path, its tensor field (the one name it has
everywhere else: `SPECS` keys, `mixdown.console.ConsoleTensors` fields, network
outputs), range, default, unit, scale and an optional training sub-range. Everything
else is generated from it: the dataclass defaults, tensor packing
(`mixdown.console.ConsoleTensors`), the learned methods' output heads (`head_outputs`),
the random baseline, reverse engineering's free parameters, the studio's page config
and the REAPER mapping (a test checks each covers every field). Adding a parameter is
one `param` entry here plus its DSP (see docs/ARCHITECTURE.md).

Networks never see these numbers directly: `ParamSpec` maps each one to and from the
normalised interval [0, 1] (linearly, or logarithmically for frequencies and times).
"""

from __future__ import annotations

import json
import math
from dataclasses import MISSING, asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal

import torch

from mixdown.errors import ParamsError
from mixdown.limits import MAX_SAMPLE_RATE_HZ, MAX_STEMS, MIN_SAMPLE_RATE_HZ
from mixdown.safeload import loads_json, read_text

SCHEMA_VERSION = 1

EQ_BAND_TYPES = ("highpass", "low_shelf", "peak", "high_shelf", "lowpass")
"""Biquad band types a channel EQ may hold (RBJ Audio-EQ-Cookbook shapes)."""

MAX_EQ_BANDS = 8

MAX_CHANNELS = MAX_STEMS
"""Most channels a settings file may hold (the most stems any command takes)."""

MAX_NAME_CHARS = 200
"""Longest channel name or method label in a settings file."""

MAX_FREQ_FRACTION = 0.49
"""A band frequency in a settings file must stay under this fraction of the sample rate."""

DESIGN_FREQ_FRACTION = 0.45
"""Highest band frequency automatic methods choose, and top of EQ response plots, as a
fraction of the sample rate: far enough under Nyquist that bilinear-transform warping
leaves the band's shape intact."""


def max_design_freq_hz(sample_rate: int) -> float:
    """The highest band frequency automatic methods set at ``sample_rate`` (`DESIGN_FREQ_FRACTION`)."""
    return round(DESIGN_FREQ_FRACTION * sample_rate, 1)


def clamp_freq_hz(freq_hz: float, sample_rate: int) -> float:
    """``freq_hz`` pulled under `max_design_freq_hz`."""
    return min(freq_hz, max_design_freq_hz(sample_rate))


Scale = Literal["linear", "log"]
Level = Literal["channel", "band", "master"]


@dataclass(frozen=True)
class ParamSpec:
    """One numeric console parameter.

    Attributes:
        tensor: its name everywhere but the JSON file: the `ConsoleTensors` field, the
            `SPECS` key and network output name, e.g. ``"eq_freq_hz"``, ``"master_gain_db"``.
        minimum: smallest accepted value.
        maximum: largest accepted value.
        default: the neutral setting (no processing where one exists); the tensor value
            of an absent processor (a compressor of ``null``, an empty EQ slot).
        unit: what an engineer reads after the number: ``"dB"``, ``"Hz"``, ``"ms"``, ...
        scale: ``"log"`` maps to [0, 1] on a logarithmic axis (frequencies, times,
            ratios), ``"linear"`` on a linear one.
        train: the sub-range learned methods predict and the random baseline draws from;
            None where they leave the parameter at its default. EQ band fields take their
            training ranges from the band type instead (`STANDARD_BANDS`).
        off: tensor value of a JSON ``null`` (the processor switched off), for fields that
            may be null; None where null is not allowed.
        digits: decimals kept when a method writes the value for reading.
        path: JSON path in the settings file, e.g. ``"channels[].eq[].freq_hz"`` (filled
            in by `SCHEMA`).
    """

    tensor: str
    minimum: float
    maximum: float
    default: float
    unit: str
    scale: Scale = "linear"
    train: tuple[float, float] | None = None
    off: float | None = None
    digits: int = 2
    path: str = ""

    @property
    def key(self) -> str:
        """The field's key in its JSON object (last part of `path`)."""
        return self.path.rsplit(".", 1)[-1]

    @property
    def level(self) -> Level:
        """``"channel"``, ``"band"`` (one value per EQ band) or ``"master"``."""
        if self.path.startswith("channels[].eq[]."):
            return "band"
        return "channel" if self.path.startswith("channels[].") else "master"

    @property
    def group(self) -> str:
        """The JSON object that holds it, below its level: ``"compressor"``, ``"reverb"`` or ``""``."""
        parts = self.path.split(".")[1:-1]
        return parts[-1] if parts and not parts[-1].endswith("[]") else ""

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

    def within(self, minimum: float, maximum: float) -> ParamSpec:
        """The same parameter restricted to ``[minimum, maximum]``."""
        return replace(self, minimum=minimum, maximum=maximum, default=min(max(self.default, minimum), maximum))

    def at_rate(self, sample_rate: int) -> ParamSpec:
        """The full range usable at ``sample_rate`` (band frequencies capped under Nyquist)."""
        if self.tensor != "eq_freq_hz":
            return self
        return self.within(self.minimum, clamp_freq_hz(self.maximum, sample_rate))

    def check(self, value: Any, where: str) -> float:
        """Return ``value`` as a float or raise `ParamsError` naming ``where``."""
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ParamsError(f"{where}: expected a number, got {_short_repr(value)}")
        # ints are compared exactly (no float conversion, which overflows past 1e308)
        if isinstance(value, float) and not math.isfinite(value):
            raise ParamsError(f"{where}: must be a finite number, got {value!r}")
        if not self.minimum <= value <= self.maximum:
            shown = f"{value:g}" if isinstance(value, float) or abs(value) < 10**15 else f"{_short_repr(value)}"
            raise ParamsError(
                f"{where}: {shown} is outside the range [{self.minimum:g}, {self.maximum:g}]"
            )
        return float(value)


def param(tensor: str, minimum: float, maximum: float, default: float, unit: str, *, scale: Scale = "linear",
          train: tuple[float, float] | None = None, off: float | None = None, digits: int = 2,
          off_by_default: bool = False, required: bool = False) -> Any:
    """A dataclass field declaring one console parameter (see `ParamSpec` for the arguments).

    The field's default is the spec's ``default``, or None with ``off_by_default`` (the
    processor is off unless set), or none at all with ``required``.
    """
    spec = ParamSpec(tensor, minimum, maximum, default, unit, scale, train, off, digits)
    if required:
        return field(metadata={"spec": spec})
    return field(default=None if off_by_default else default, metadata={"spec": spec})


@dataclass
class EQBand:
    """One biquad band. ``gain_db`` is ignored by the pass filters."""

    type: str
    freq_hz: float = param("eq_freq_hz", 10.0, 22000.0, 1000.0, "Hz", scale="log", digits=1, required=True)
    gain_db: float = param("eq_gain_db", -24.0, 24.0, 0.0, "dB")
    q: float = param("eq_q", 0.1, 18.0, 0.707, "", scale="log", digits=3)


@dataclass
class CompressorParams:
    """Feed-forward compressor, log-domain soft knee (Giannoulis, Massberg & Reiss 2012)."""

    threshold_db: float = param("threshold_db", -60.0, 0.0, 0.0, "dB", train=(-60.0, 0.0))
    ratio: float = param("ratio", 1.0, 20.0, 1.0, ":1", scale="log", train=(1.0, 10.0))
    attack_ms: float = param("attack_ms", 0.1, 200.0, 10.0, "ms", scale="log", train=(0.5, 100.0))
    release_ms: float = param("release_ms", 5.0, 2000.0, 100.0, "ms", scale="log", train=(20.0, 1000.0))
    knee_db: float = param("knee_db", 0.0, 24.0, 6.0, "dB", train=(0.0, 12.0))
    makeup_db: float = param("makeup_db", -12.0, 24.0, 0.0, "dB", train=(0.0, 12.0))


@dataclass
class ChannelParams:
    """One channel strip: EQ -> compressor -> fader (gain, mute) -> pan, plus a post-fader reverb send.

    ``compressor = None`` and ``reverb_send_db = None`` switch those off.
    """

    name: str
    instrument: str = "other"
    gain_db: float = param("gain_db", -80.0, 24.0, 0.0, "dB", train=(-40.0, 24.0))
    pan: float = param("pan", -1.0, 1.0, 0.0, "", train=(-1.0, 1.0), digits=3)
    mute: bool = False
    eq: list[EQBand] = field(default_factory=list)
    compressor: CompressorParams | None = None
    reverb_send_db: float | None = param("reverb_send_db", -80.0, 6.0, -80.0, "dB", train=(-60.0, 0.0),
                                         off=-math.inf, off_by_default=True)


@dataclass
class ReverbParams:
    """The shared stereo reverb bus (exponentially decaying filtered noise)."""

    decay_s: float = param("reverb_decay_s", 0.1, 8.0, 1.6, "s", scale="log", train=(0.3, 4.0), digits=3)
    predelay_ms: float = param("reverb_predelay_ms", 0.0, 200.0, 20.0, "ms", digits=1)
    return_db: float = param("reverb_return_db", -40.0, 12.0, 0.0, "dB")


@dataclass
class MasterParams:
    """Master bus: gain, optional loudness normalisation, true-peak ceiling.

    ``target_lufs = None`` leaves the loudness alone; ``ceiling_dbtp = None`` turns the
    limiter off.
    """

    gain_db: float = param("master_gain_db", -80.0, 24.0, 0.0, "dB")
    target_lufs: float | None = param("target_lufs", -40.0, -5.0, -14.0, "LUFS", off=math.nan)
    ceiling_dbtp: float | None = param("ceiling_dbtp", -12.0, 0.0, -1.0, "dBTP", off=math.nan)
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
        params = parse_dataclass(cls, data, "params", every_key=True)
        params.validate()
        return params

    @classmethod
    def from_json(cls, text: str, source: str = "params") -> ConsoleParams:
        """Parse and validate a settings file's text (size, nesting and every value checked; see `mixdown.safeload`)."""
        data = loads_json(text, source, error=ParamsError)
        try:
            return cls.from_dict(data)
        except ParamsError as exc:
            raise ParamsError(f"{source}: {exc}") from None

    @classmethod
    def load(cls, path: str | Path) -> ConsoleParams:
        """Read, parse and validate a settings file; `ParamsError` naming the file and the field."""
        path = Path(path)
        # JSON's NaN/Infinity tokens parse; the range checks reject them naming the field.
        return cls.from_json(read_text(path, error=ParamsError), source=str(path))

    def validate(self) -> None:
        """Check every value against its range and the structure; raise `ParamsError`."""
        from mixdown.multitrack import INSTRUMENT_CLASSES

        if isinstance(self.version, bool) or self.version != SCHEMA_VERSION or not isinstance(self.version, int):
            raise ParamsError(f"version: {_short_repr(self.version)} is not supported (expected {SCHEMA_VERSION})")
        if isinstance(self.sample_rate, bool) or not isinstance(self.sample_rate, int) \
                or not MIN_SAMPLE_RATE_HZ <= self.sample_rate <= MAX_SAMPLE_RATE_HZ:
            raise ParamsError(f"sample_rate: {_short_repr(self.sample_rate)} is not a sample rate in "
                              f"{MIN_SAMPLE_RATE_HZ}..{MAX_SAMPLE_RATE_HZ}")
        if not isinstance(self.method, str) or len(self.method) > MAX_NAME_CHARS:
            raise ParamsError(f"method: expected a name (a string of at most {MAX_NAME_CHARS} characters), "
                              f"got {_short_repr(self.method)}")
        if not self.channels:
            raise ParamsError("channels: at least one channel is needed")
        if len(self.channels) > MAX_CHANNELS:
            raise ParamsError(f"channels: {len(self.channels)} channels; at most {MAX_CHANNELS}")
        for i, ch in enumerate(self.channels):
            if not isinstance(ch.name, str) or not ch.name or len(ch.name) > MAX_NAME_CHARS:
                raise ParamsError(f"channels[{i}].name: expected a non-empty string of at most {MAX_NAME_CHARS} "
                                  f"characters, got {_short_repr(ch.name)}")
        names = [ch.name for ch in self.channels]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ParamsError(f"channels: duplicate channel names {duplicates}")
        for i, ch in enumerate(self.channels):
            where = f"channels[{i}] ({ch.name})"
            if not isinstance(ch.instrument, str) or ch.instrument not in INSTRUMENT_CLASSES:
                raise ParamsError(f"{where}.instrument: {_short_repr(ch.instrument)} is not an instrument class "
                                  f"(one of {', '.join(INSTRUMENT_CLASSES)})")
            if not isinstance(ch.mute, bool):
                raise ParamsError(f"{where}.mute: expected true or false, got {ch.mute!r}")
            if not isinstance(ch.eq, list):
                raise ParamsError(f"{where}.eq: expected a list of bands, got {_short_repr(ch.eq)}")
            if len(ch.eq) > MAX_EQ_BANDS:
                raise ParamsError(f"{where}.eq: {len(ch.eq)} bands; at most {MAX_EQ_BANDS}")
            _check_values(ch, where)
            for k, band in enumerate(ch.eq):
                bwhere = f"{where}.eq[{k}]"
                if not isinstance(band.type, str) or band.type not in EQ_BAND_TYPES:
                    raise ParamsError(f"{bwhere}.type: {_short_repr(band.type)} is not one of {list(EQ_BAND_TYPES)}")
                _check_values(band, bwhere)
                if band.freq_hz >= MAX_FREQ_FRACTION * self.sample_rate:
                    raise ParamsError(
                        f"{bwhere}.freq_hz: {band.freq_hz:g} Hz is at or above Nyquist "
                        f"for {self.sample_rate} Hz audio"
                    )
            if ch.compressor is not None:
                _check_values(ch.compressor, f"{where}.compressor")
        _check_values(self.master, "master")
        _check_values(self.master.reverb, "master.reverb")

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


def _spec(f: Any) -> ParamSpec | None:
    return f.metadata.get("spec")


def _check_values(obj: Any, where: str) -> None:
    """Range-check the schema fields held directly by dataclass ``obj`` (nullable ones may be None)."""
    for f in fields(obj):
        spec, value = _spec(f), getattr(obj, f.name)
        if spec is not None and not (value is None and spec.off is not None):
            spec.check(value, f"{where}.{f.name}")


_NESTED: dict[tuple[type, str], tuple[type, bool]] = {
    (ConsoleParams, "channels"): (ChannelParams, True),
    (ConsoleParams, "master"): (MasterParams, False),
    (ChannelParams, "eq"): (EQBand, True),
    (ChannelParams, "compressor"): (CompressorParams, False),
    (MasterParams, "reverb"): (ReverbParams, False),
}
"""Dataclass fields that hold other dataclasses: ``(owner, field) -> (held class, is a list)``."""


def _walk(cls: type, path: str) -> list[ParamSpec]:
    specs = []
    for f in fields(cls):
        nested = _NESTED.get((cls, f.name))
        if nested is not None:
            held, is_list = nested
            specs += _walk(held, f"{path}{f.name}{'[]' if is_list else ''}.")
        elif (spec := _spec(f)) is not None:
            specs.append(replace(spec, path=f"{path}{f.name}"))
    return specs


SCHEMA: tuple[ParamSpec, ...] = tuple(_walk(ConsoleParams, ""))
"""Every numeric console parameter in settings-file order (channel, band, then master fields)."""

SPECS: dict[str, ParamSpec] = {spec.tensor: spec for spec in SCHEMA}
"""`SCHEMA` by tensor field name."""


@dataclass(frozen=True)
class StandardBand:
    """One slot of the fixed EQ layout learned methods use.

    Attributes:
        type: its band type.
        train: training sub-range per band field it learns (``eq_freq_hz``,
            ``eq_gain_db``, ``eq_q``); fields not listed stay at their schema default
            (a pass filter has no gain and a fixed Q of 0.707).
    """

    type: str
    train: dict[str, tuple[float, float]]

    def spec(self, tensor: str, sample_rate: int) -> ParamSpec:
        """The band field ``tensor`` (e.g. ``"eq_freq_hz"``) in this slot's training range where it
        has one, else in its full range, at ``sample_rate``."""
        spec = SPECS[tensor]
        if tensor in self.train:
            spec = spec.within(*self.train[tensor])
        return spec.at_rate(sample_rate)


STANDARD_BANDS: tuple[StandardBand, ...] = (
    StandardBand("highpass", {"eq_freq_hz": (16.0, 1000.0)}),
    StandardBand("low_shelf", {"eq_freq_hz": (30.0, 600.0), "eq_gain_db": (-12.0, 12.0), "eq_q": (0.4, 1.5)}),
    StandardBand("peak", {"eq_freq_hz": (80.0, 10000.0), "eq_gain_db": (-12.0, 12.0), "eq_q": (0.3, 8.0)}),
    StandardBand("high_shelf", {"eq_freq_hz": (1500.0, 16000.0), "eq_gain_db": (-12.0, 12.0),
                                "eq_q": (0.4, 1.5)}),
)
"""The standard strip (high-pass, low shelf, bell, high shelf) of synthetic targets and learned methods."""

STANDARD_EQ: tuple[str, ...] = tuple(band.type for band in STANDARD_BANDS)
"""Band types of `STANDARD_BANDS`, in order."""

STANDARD_BAND_BY_TYPE: dict[str, StandardBand] = {band.type: band for band in STANDARD_BANDS}
"""`STANDARD_BANDS` by band type."""


@dataclass(frozen=True)
class HeadOutput:
    """One number a learned method predicts per track (or per mix for the master).

    Attributes:
        spec: the parameter, its range narrowed to the training sub-range.
        band: index into `STANDARD_BANDS` for EQ fields, else None.
    """

    spec: ParamSpec
    band: int | None = None

    @property
    def tensor(self) -> str:
        return self.spec.tensor


def head_outputs(sample_rate: int, level: Literal["channel", "master"]) -> tuple[HeadOutput, ...]:
    """What learned methods predict at ``level``, in schema order, at ``sample_rate``.

    Channel outputs: every channel field with a training range, with the EQ fields of
    each `STANDARD_BANDS` slot at the EQ's place; master outputs: every master field with
    a training range. Band frequencies are capped under `max_design_freq_hz`.
    """
    outputs: list[HeadOutput] = []
    band_specs = [spec for spec in SCHEMA if spec.level == "band"]
    for spec in SCHEMA:
        if spec.level == "band" and level == "channel" and spec is band_specs[0]:
            for k, band in enumerate(STANDARD_BANDS):
                outputs += [HeadOutput(band.spec(s.tensor, sample_rate), k)
                            for s in band_specs if s.tensor in band.train]
        elif spec.level == level and spec.train is not None:
            outputs.append(HeadOutput(spec.within(*spec.train)))
    return tuple(outputs)


OPTIONAL_KEYS: dict[type, frozenset[str]] = {
    ConsoleParams: frozenset({"method", "version"}),
    ChannelParams: frozenset({"instrument"}),
}
"""Keys a settings file may leave out: labels that do not change the sound (``method``,
``instrument``: default ``"manual"``, ``"other"``) and ``version`` (the current one).
Every other key is required, so that a deleted line is an error naming the key, never
a silent default (``ceiling_dbtp`` left out is not "limiter off": that is ``null``).
Files mixdown writes state every key (`ConsoleParams.to_dict`)."""

_MAX_ITEMS: dict[tuple[type, str], int] = {
    (ConsoleParams, "channels"): MAX_CHANNELS,
    (ChannelParams, "eq"): MAX_EQ_BANDS,
}
"""List fields' longest accepted length, checked before their items are parsed."""


def _short_repr(value: Any, limit: int = 60) -> str:
    """``repr(value)`` cut to ``limit`` characters (values in messages come from files anyone can write)."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10**30:
        return f"an integer of {len(str(abs(value)))} digits"
    text = repr(value) if not isinstance(value, (list, dict)) else f"a {type(value).__name__} of {len(value)} items"
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _null_hint(cls: type, name: str) -> str:
    spec = next((_spec(f) for f in fields(cls) if f.name == name), None)
    nullable = (spec is not None and spec.off is not None) or (cls, name) == (ChannelParams, "compressor")
    return " (null switches it off)" if nullable else ""


def parse_dataclass(cls: type, data: Any, where: str, every_key: bool = False) -> Any:
    """Build dataclass ``cls`` from JSON-like ``data``, rejecting unknown and missing keys by name.

    Lists longer than `_MAX_ITEMS` allows are refused before their items are read.

    Args:
        cls: The dataclass.
        data: Its JSON-like form.
        where: Its path, for messages.
        every_key: Require every key but those of `OPTIONAL_KEYS` (a settings file);
            otherwise only fields without a default are required (methods building
            settings from the fields they set).
    """
    if not isinstance(data, dict):
        raise ParamsError(f"{where}: expected an object, got {type(data).__name__}")
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(set(data) - set(known))
    if unknown:
        paths = ", ".join(f"{where}.{key}" for key in unknown[:5]) + (", ..." if len(unknown) > 5 else "")
        raise ParamsError(f"{paths}: unknown key; expected some of {sorted(known)}")
    if every_key:
        missing = [name for name in known if name not in data and name not in OPTIONAL_KEYS.get(cls, ())]
    else:
        missing = [f.name for f in known.values()
                   if f.name not in data and f.default is MISSING and f.default_factory is MISSING]
    if missing:
        raise ParamsError(f"{where}: missing {', '.join(repr(m) + _null_hint(cls, m) for m in missing)}"
                          + ("; settings files state every key" if every_key else ""))
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        sub = f"{where}.{key}"
        nested = _NESTED.get((cls, key))
        if nested is None or (value is None and not nested[1] and known[key].default is None):
            kwargs[key] = value
        elif nested[1]:
            if not isinstance(value, list):
                raise ParamsError(f"{sub}: expected a list, got {type(value).__name__}")
            most = _MAX_ITEMS.get((cls, key))
            if most is not None and len(value) > most:
                raise ParamsError(f"{sub}: {len(value)} items; at most {most}")
            kwargs[key] = [parse_dataclass(nested[0], item, f"{sub}[{i}]", every_key) for i, item in enumerate(value)]
        else:
            kwargs[key] = parse_dataclass(nested[0], value, sub, every_key)
    return cls(**kwargs)
