"""Every consumer of the parameter schema covers every field of `mixdown.params.SCHEMA`.

Adding a console parameter is one `param` entry in ``params.py``; these tests fail until
each consumer handles it: the tensor packing (`ConsoleTensors`), the learned methods'
heads (`head_outputs`), the dataclass defaults and validation, the studio's page config,
the REAPER mapping, the random baseline and reverse engineering's free parameters.
"""

from __future__ import annotations

import math
import re
from dataclasses import MISSING, fields

import numpy as np
import pytest

from mixdown.console import ConsoleTensors
from mixdown.errors import ParamsError
from mixdown.export.reaper import REAPER_FIELDS, MapContext
from mixdown.params import (
    EQ_BAND_TYPES,
    SCHEMA,
    SPECS,
    STANDARD_BANDS,
    ChannelParams,
    CompressorParams,
    ConsoleParams,
    EQBand,
    MasterParams,
    ParamSpec,
    ReverbParams,
    head_outputs,
)
from mixdown.web.studio.service import StudioConfig, page_config

SR = 48000
TENSORS = [spec.tensor for spec in SCHEMA]


def _draw(rng: np.random.RandomState, spec: ParamSpec) -> float:
    """A valid value of ``spec`` (at `SR`), uniform on its scale, rounded to its digits."""
    spec = spec.at_rate(SR)
    u = rng.uniform()
    if spec.scale == "log":
        value = math.exp(math.log(spec.minimum) + u * (math.log(spec.maximum) - math.log(spec.minimum)))
    else:
        value = spec.minimum + u * (spec.maximum - spec.minimum)
    return min(max(round(value, spec.digits), spec.minimum), spec.maximum)


def _level(rng: np.random.RandomState, level: str, nulls: bool) -> dict:
    """Settings of every spec at ``level`` as nested JSON-like dicts; nullable ones sometimes null."""
    tree: dict = {}
    for spec in SCHEMA:
        if spec.level != level:
            continue
        holder = tree.setdefault(spec.group, {}) if spec.group else tree
        holder[spec.key] = None if nulls and spec.off is not None and rng.uniform() < 0.3 else _draw(rng, spec)
    return tree


def random_params(seed: int, tracks: int = 3) -> ConsoleParams:
    """Random valid settings touching every schema field (built from `SCHEMA`, not by hand)."""
    rng = np.random.RandomState(seed)
    channels = []
    for t in range(tracks):
        channel = _level(rng, "channel", nulls=True)
        if rng.uniform() < 0.3:
            channel["compressor"] = None
        channel["eq"] = [{"type": EQ_BAND_TYPES[rng.randint(len(EQ_BAND_TYPES))], **_level(rng, "band", nulls=False)}
                         for _ in range(rng.randint(0, 4))]
        channels.append({"name": f"track{t}", "instrument": "other", "mute": bool(rng.uniform() < 0.3), **channel})
    return ConsoleParams.from_dict({"channels": channels, "master": _level(rng, "master", nulls=True),
                                    "sample_rate": SR, "method": "test"})


def test_schema_names_are_unique_and_ranges_hold_their_defaults():
    assert len(SPECS) == len(SCHEMA) and len({spec.path for spec in SCHEMA}) == len(SCHEMA)
    for spec in SCHEMA:
        assert spec.minimum <= spec.default <= spec.maximum, spec.tensor
        if spec.train is not None:
            assert spec.minimum <= spec.train[0] < spec.train[1] <= spec.maximum, spec.tensor
        if spec.scale == "log":
            assert spec.minimum > 0, spec.tensor


# ---------------------------------------------------------------------------- tensors


def test_console_tensor_fields_are_the_schema_plus_mute_and_band_type():
    assert {f.name for f in fields(ConsoleTensors)} == set(TENSORS) | {"mute", "eq_type"}


@pytest.mark.parametrize("seed", range(8))
def test_tensors_round_trip_every_field(seed):
    batch = [random_params(seed), random_params(seed + 100)]
    tensors = ConsoleTensors.from_params(batch)
    for index, params in enumerate(batch):
        back = tensors.to_params(index, [ch.name for ch in params.channels], [ch.instrument for ch in params.channels],
                                 SR, params.method)
        assert back.to_dict() == params.to_dict()


def test_random_settings_reach_every_field():
    """The round trip above exercises every field with a value other than its default."""
    tensors = ConsoleTensors.from_params([random_params(seed) for seed in range(8)])
    for spec in SCHEMA:
        values = getattr(tensors, spec.tensor)
        assert (values.isfinite() & (values != spec.default)).any(), spec.tensor


# ------------------------------------------------------------------------ dataclasses


def _declared() -> dict[str, object]:
    """``{tensor: dataclass field default}`` of every field declared with `param`."""
    out = {}
    for cls in (ChannelParams, EQBand, CompressorParams, MasterParams, ReverbParams):
        for f in fields(cls):
            if "spec" in f.metadata:
                out[f.metadata["spec"].tensor] = f.default
    return out


def test_dataclass_defaults_are_the_spec_defaults():
    declared = _declared()
    assert set(declared) == set(TENSORS)
    for spec in SCHEMA:
        default = declared[spec.tensor]
        if default is MISSING:  # required (an EQ band's frequency)
            continue
        if default is None:  # the processor is off unless set
            assert spec.off is not None, spec.tensor
        else:
            assert default == spec.default, spec.tensor
    for cls in (CompressorParams, ReverbParams):  # the processors' neutral settings
        instance = cls()
        for f in fields(cls):
            assert getattr(instance, f.name) == f.metadata["spec"].default


def _full_params() -> ConsoleParams:
    """Valid settings in which every schema field is present (not null)."""
    return ConsoleParams(
        channels=[ChannelParams(name="kick", eq=[EQBand("peak", 1000.0)], compressor=CompressorParams(),
                                reverb_send_db=-20.0)],
        master=MasterParams(), sample_rate=SR)


def _set(params: ConsoleParams, spec: ParamSpec, value: float) -> None:
    """Set ``spec`` in ``params`` (the first channel and band) in place."""
    holder = {"channel": params.channels[0], "band": params.channels[0].eq[0], "master": params.master}[spec.level]
    setattr(getattr(holder, spec.group) if spec.group else holder, spec.key, value)


def _path_pattern(spec: ParamSpec) -> str:
    """A regex for ``spec.path`` as errors write it: list items indexed, channels named."""
    return re.escape(spec.path).replace(re.escape("[]"), r"\[\d+\](?: \([^)]*\))?")


@pytest.mark.parametrize("spec", SCHEMA, ids=TENSORS)
def test_validate_rejects_just_outside_each_range_naming_the_path(spec):
    for edge in (spec.minimum, spec.maximum):
        params = _full_params()
        _set(params, spec, edge)
        params.validate()  # the bounds themselves are valid
    for outside in (math.nextafter(spec.minimum, -math.inf), math.nextafter(spec.maximum, math.inf)):
        params = _full_params()
        _set(params, spec, outside)
        with pytest.raises(ParamsError) as error:
            params.validate()
        assert re.match(_path_pattern(spec) + ": .* is outside the range", str(error.value)), str(error.value)
        with pytest.raises(ParamsError, match=_path_pattern(spec)):
            ConsoleParams.from_dict(params.to_dict())


# ------------------------------------------------------------------- learned methods


@pytest.mark.parametrize("sample_rate", [22050, 44100])
def test_head_outputs_cover_every_trained_field_and_standard_band(sample_rate):
    channel = head_outputs(sample_rate, "channel")
    expected = {(spec.tensor, None) for spec in SCHEMA if spec.level == "channel" and spec.train is not None}
    expected |= {(tensor, k) for k, band in enumerate(STANDARD_BANDS) for tensor in band.train}
    assert {(o.tensor, o.band) for o in channel} == expected and len(channel) == len(expected)
    master = head_outputs(sample_rate, "master")
    assert [o.tensor for o in master] == [s.tensor for s in SCHEMA if s.level == "master" and s.train is not None]
    band_tensors = {spec.tensor for spec in SCHEMA if spec.level == "band"}
    for band in STANDARD_BANDS:
        assert band.type in EQ_BAND_TYPES and set(band.train) <= band_tensors
    for output in (*channel, *master):
        full = SPECS[output.tensor]
        assert full.minimum <= output.spec.minimum < output.spec.maximum <= full.maximum
        assert output.spec.maximum < 0.5 * sample_rate or full.unit != "Hz"


# ---------------------------------------------------------------------------- studio


def test_studio_page_config_lists_every_schema_entry(tmp_path):
    schema = page_config(StudioConfig(data_dir=tmp_path))["schema"]
    assert [entry["path"] for entry in schema] == [spec.path for spec in SCHEMA]
    for entry, spec in zip(schema, SCHEMA, strict=True):
        assert entry == {"path": spec.path, "tensor": spec.tensor, "key": spec.key, "level": spec.level,
                         "group": spec.group, "min": spec.minimum, "max": spec.maximum, "default": spec.default,
                         "unit": spec.unit, "scale": spec.scale, "digits": spec.digits,
                         "nullable": spec.off is not None}


# ---------------------------------------------------------------------------- REAPER


def test_reaper_table_has_every_tensor_name():
    assert set(REAPER_FIELDS) == set(TENSORS)


@pytest.mark.parametrize("spec", SCHEMA, ids=TENSORS)
def test_reaper_entry_writes_the_field_or_says_why_not(spec):
    entry = REAPER_FIELDS[spec.tensor]
    assert entry.how
    if entry.target is None:  # no REAPER equivalent: the notes name the setting
        assert entry.convert is None and "{value" in entry.note
        assert entry.note.format(value=spec.default)
    elif entry.convert is None:  # folded into another field's number
        assert entry.slot is not None
    else:
        for value in (spec.minimum, spec.default, spec.maximum):
            for band_type in (EQ_BAND_TYPES if spec.level == "band" else ("",)):
                converted = entry.convert(value, MapContext("x", [], band_type=band_type))
                assert math.isfinite(converted), (spec.tensor, value, band_type)


# ------------------------------------------------------------------------ random baseline and reverse


def test_random_baseline_draws_every_trained_field_inside_its_training_range():
    from mixdown.mixers.baselines import RandomMixer
    from mixdown.multitrack import Multitrack

    rng = np.random.default_rng(0)
    multitrack = Multitrack.from_arrays({f"s{i}": 0.1 * rng.standard_normal((1, 800)).astype(np.float32)
                                         for i in range(6)}, SR)
    drawn = ConsoleTensors.from_params([RandomMixer(seed).predict(multitrack) for seed in range(4)])
    band_ranges = {(k, tensor): r for k, band in enumerate(STANDARD_BANDS) for tensor, r in band.train.items()}
    for spec in SCHEMA:
        values = getattr(drawn, spec.tensor)
        if spec.level == "band":
            for k, band in enumerate(STANDARD_BANDS):
                lo, hi = band_ranges.get((k, spec.tensor), (spec.default, spec.default))
                hi = min(hi, spec.at_rate(SR).maximum) if spec.tensor == "eq_freq_hz" else hi
                column = values[..., k]
                assert float(column.min()) >= lo - 1e-3 and float(column.max()) <= hi + 1e-3, (spec.tensor, k)
        elif spec.train is None:
            assert bool((values == spec.default).all()), spec.tensor
        else:
            on = values if spec.group != "compressor" else values[drawn.ratio != 1.0]
            assert float(on.min()) >= spec.train[0] - 1e-3 and float(on.max()) <= spec.train[1] + 1e-3, spec.tensor
            assert len(set(on.flatten().tolist())) > 1, spec.tensor  # drawn, not fixed


def test_reverse_moves_every_field_or_states_why_not():
    from mixdown.mixers.reverse import ReverseConfig, fixed_reason, free_parameters

    config = ReverseConfig(fit_eq=True, fit_compressor=True, fit_reverb=True)
    bands = [EQBand(band.type, 1000.0) for band in STANDARD_BANDS]
    start = ConsoleTensors.from_params([ConsoleParams([ChannelParams("a", eq=bands), ChannelParams("b", eq=bands)],
                                                      sample_rate=SR)])
    free = free_parameters(start, config, SR)
    for spec in SCHEMA:
        reason = fixed_reason(spec, config)
        assert (spec.tensor in free) != (reason is not None), spec.tensor
        assert reason is None or len(reason) > 10, spec.tensor  # a stated reason, not a flag
    assert {"gain_db", "pan", "eq_freq_hz", "threshold_db", "reverb_send_db", "reverb_decay_s"} <= set(free)
