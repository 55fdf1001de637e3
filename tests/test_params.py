"""ConsoleParams: JSON round trip, schema version, ranges with field paths, ParamSpec maps."""

from __future__ import annotations

import inspect
import json
import math
from dataclasses import fields

import pytest
import torch

from mixdown.dsp.compressor import compressor
from mixdown.dsp.eq import parametric_eq
from mixdown.dsp.reverb import impulse_response
from mixdown.errors import ParamsError
from mixdown.params import (
    MAX_FREQ_FRACTION,
    SCHEMA,
    SCHEMA_VERSION,
    SPECS,
    ChannelParams,
    CompressorParams,
    ConsoleParams,
    EQBand,
    MasterParams,
    ReverbParams,
    clamp_freq_hz,
    default_channel,
)


def full_params() -> ConsoleParams:
    """Settings using every field, every band type and both on/off states of the options."""
    return ConsoleParams(
        channels=[
            ChannelParams(
                name="snare", instrument="snare", gain_db=-4.25, pan=-0.3, mute=False,
                eq=[EQBand("highpass", 80.0), EQBand("low_shelf", 200.0, 2.5, 0.707), EQBand("peak", 1234.5, -6.0, 3.3),
                    EQBand("high_shelf", 9000.0, 1.5), EQBand("lowpass", 18000.0, 0.0, 0.5)],
                compressor=CompressorParams(-18.5, 4.0, 3.0, 150.0, 3.0, 2.0),
                reverb_send_db=-21.0,
            ),
            ChannelParams(name="bass", instrument="bass", gain_db=3.0, pan=0.0, mute=True),
        ],
        master=MasterParams(gain_db=-1.0, target_lufs=None, ceiling_dbtp=-0.5,
                            reverb=ReverbParams(decay_s=2.2, predelay_ms=35.0, return_db=-3.0)),
        sample_rate=48000,
        method="rules",
    )


def test_json_round_trip_is_exact(tmp_path):
    params = full_params()
    text = params.to_json()
    assert ConsoleParams.from_json(text) == params
    assert ConsoleParams.from_dict(json.loads(text)) == params
    (tmp_path / "p.json").write_text(text)
    assert ConsoleParams.load(tmp_path / "p.json") == params
    assert json.loads(text)["version"] == SCHEMA_VERSION


@pytest.mark.parametrize("version", [0, SCHEMA_VERSION + 1, "1", None])
def test_unknown_version_is_refused_by_name(version):
    data = full_params().to_dict()
    data["version"] = version
    with pytest.raises(ParamsError, match=r"^src\.json: version: .* not supported"):
        ConsoleParams.from_json(json.dumps(data), source="src.json")


def _grid(name: str) -> torch.Tensor:
    spec = SPECS[name]
    if spec.scale == "log":
        return torch.logspace(math.log10(spec.minimum), math.log10(spec.maximum), 41, dtype=torch.float64)
    return torch.linspace(spec.minimum, spec.maximum, 41, dtype=torch.float64)


@pytest.mark.parametrize("name", sorted(SPECS))
def test_spec_maps_round_trip_and_are_monotonic(name):
    spec = SPECS[name]
    assert spec.minimum <= spec.default <= spec.maximum
    values = _grid(name)
    unit = spec.normalize(values)
    assert unit[0].item() == pytest.approx(0.0, abs=1e-12) and unit[-1].item() == pytest.approx(1.0, abs=1e-12)
    assert torch.all(torch.diff(unit) > 0)
    torch.testing.assert_close(spec.denormalize(unit), values, rtol=1e-10, atol=1e-10)
    # the log maps space values evenly by ratio, the linear ones by difference
    steps = torch.diff(unit)
    torch.testing.assert_close(steps, torch.full_like(steps, 1 / 40), rtol=1e-9, atol=1e-12)
    grid = torch.linspace(0, 1, 11, dtype=torch.float64)
    torch.testing.assert_close(spec.normalize(spec.denormalize(grid)), grid, rtol=1e-10, atol=1e-10)
    outside = spec.denormalize(torch.tensor([-0.5, 1.5], dtype=torch.float64))
    assert outside.tolist() == pytest.approx([spec.minimum, spec.maximum])


def test_every_numeric_field_is_declared_once_in_the_schema():
    for cls in (ChannelParams, EQBand, CompressorParams, MasterParams, ReverbParams):
        numeric = {f.name for f in fields(cls) if "float" in str(f.type)}
        declared = {f.name for f in fields(cls) if "spec" in f.metadata}
        assert numeric == declared, cls.__name__
    paths = [spec.path for spec in SCHEMA]
    assert len(set(paths)) == len(paths) == len(SPECS) == len({spec.tensor for spec in SCHEMA})
    assert all(spec.path.endswith("." + spec.key) and spec.key in spec.path for spec in SCHEMA)
    assert {spec.level for spec in SCHEMA} == {"channel", "band", "master"}


@pytest.mark.parametrize(
    ("function", "cls", "renames"),
    [
        (compressor, CompressorParams, {}),
        (parametric_eq, EQBand, {"type": "band_type"}),
        (impulse_response, ReverbParams, {"return_db": None}),  # the return level is applied by the bus
    ],
)
def test_dsp_keywords_match_param_field_names(function, cls, renames):
    """dasp issue #5: a spec whose name is not the processor's keyword silently drops the value."""
    keywords = set(inspect.signature(function).parameters)
    for f in fields(cls):
        keyword = renames.get(f.name, f.name)
        if keyword is not None:
            assert keyword in keywords, (function.__name__, f.name)


def _set(path: str, value):
    """An editor of the on-disk dict that sets the dotted ``path`` (``channels[0].eq[1].q``)."""

    def edit(data: dict) -> None:
        node = data
        parts = path.replace("]", "").replace("[", ".").split(".")
        for part in parts[:-1]:
            node = node[int(part)] if part.isdigit() else node[part]
        node[parts[-1]] = value

    return edit


OUT_OF_RANGE = [
    ("channels[0].gain_db", 24.5),
    ("channels[0].pan", -1.01),
    ("channels[0].eq[0].freq_hz", 5.0),
    ("channels[0].eq[2].gain_db", 30.0),
    ("channels[0].eq[2].q", 0.0),
    ("channels[0].compressor.threshold_db", 3.0),
    ("channels[0].compressor.ratio", 0.0),
    ("channels[0].compressor.attack_ms", 0.0),
    ("channels[0].compressor.release_ms", 5000.0),
    ("channels[0].compressor.knee_db", -1.0),
    ("channels[0].compressor.makeup_db", 40.0),
    ("channels[0].reverb_send_db", 12.0),
    ("channels[1].gain_db", 1000.0),
    ("master.gain_db", -100.0),
    ("master.target_lufs", 0.0),
    ("master.ceiling_dbtp", 1.0),
    ("master.reverb.decay_s", 0.0),
    ("master.reverb.predelay_ms", 500.0),
    ("master.reverb.return_db", 20.0),
]


def _display_path(path: str, data: dict) -> str:
    """Where validation names a channel field: ``channels[0] (snare).gain_db``."""
    if not path.startswith("channels["):
        return path
    index = int(path[len("channels["):path.index("]")])
    return f"channels[{index}] ({data['channels'][index]['name']})" + path[path.index("]") + 1:]


@pytest.mark.parametrize(("path", "value"), OUT_OF_RANGE, ids=[p for p, _ in OUT_OF_RANGE])
def test_out_of_range_value_is_refused_with_its_path(path, value):
    data = full_params().to_dict()
    _set(path, value)(data)
    with pytest.raises(ParamsError, match="outside the range") as info:
        ConsoleParams.from_dict(data)
    assert str(info.value).startswith(_display_path(path, data) + ": ")


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf"), True, "loud", None, [1.0]])
def test_non_numbers_are_refused_with_their_path(value):
    data = full_params().to_dict()
    _set("channels[0].compressor.attack_ms", value)(data)
    with pytest.raises(ParamsError, match=r"^f\.json: channels\[0\] \(snare\)\.compressor\.attack_ms: "):
        ConsoleParams.from_json(json.dumps(data), source="f.json")


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (_set("channels[0].gian_db", 1.0), r"params\.channels\[0\]\.gian_db: unknown key"),
        (_set("master.reverb.size", 1.0), r"params\.master\.reverb\.size: unknown key"),
        (_set("master", None), r"params\.master: expected an object"),
        (_set("master.reverb", None), r"params\.master\.reverb: expected an object"),
        (_set("channels[0].eq", {}), r"params\.channels\[0\]\.eq: expected a list"),
        (_set("channels[0].eq[0].type", "notch"), r"channels\[0\] \(snare\)\.eq\[0\]\.type: 'notch'"),
        (_set("channels", []), r"channels: at least one"),
        (_set("channels[1].name", "snare"), r"duplicate channel names \['snare'\]"),
        (_set("sample_rate", 44100.0), r"sample_rate: 44100\.0"),
        (_set("channels[0].mute", 1), r"channels\[0\] \(snare\)\.mute: expected true or false"),
    ],
)
def test_malformed_structure_is_refused_by_path(edit, message):
    data = full_params().to_dict()
    edit(data)
    with pytest.raises(ParamsError, match=message):
        ConsoleParams.from_dict(data)


def test_compressor_off_is_allowed():
    data = full_params().to_dict()
    data["channels"][0]["compressor"] = None
    assert ConsoleParams.from_dict(data).channels[0].compressor is None


@pytest.mark.parametrize("sample_rate", [16000, 22050, 44100])
def test_eq_band_at_or_above_nyquist_is_refused(sample_rate):
    params = ConsoleParams([ChannelParams("x", eq=[EQBand("peak", MAX_FREQ_FRACTION * sample_rate)])],
                           sample_rate=sample_rate)
    with pytest.raises(ParamsError, match=r"channels\[0\] \(x\)\.eq\[0\]\.freq_hz: .* Nyquist"):
        params.validate()


@pytest.mark.parametrize(
    ("freq_hz", "sample_rate", "expected"),
    [(1000.0, 44100, 1000.0), (19845.0, 44100, 19845.0), (20000.0, 44100, 19845.0),
     (12000.0, 22050, 9922.5), (9000.0, 16000, 7200.0), (22000.0, 8000, 3600.0)],
)
def test_clamp_freq_hz_known_values_and_always_valid(freq_hz, sample_rate, expected):
    clamped = clamp_freq_hz(freq_hz, sample_rate)
    assert clamped == expected
    ConsoleParams([ChannelParams("x", eq=[EQBand("high_shelf", clamped)])], sample_rate=sample_rate).validate()


def test_check_matches_names_missing_and_extra_stems():
    params = ConsoleParams([default_channel("kick"), default_channel("gtr")])
    params.check_matches(["gtr", "kick"])
    with pytest.raises(ParamsError, match=r"no settings for stems \['bass'\]; settings for unknown stems \['gtr'\]"):
        params.check_matches(["kick", "bass"])
    assert [ch.name for ch in params.ordered_like(["gtr", "kick"]).channels] == ["gtr", "kick"]


# ------------------------------------------------------------------ malformed files: one ParamsError each


def _nested_keys(cls: type) -> set[str]:
    return {f.name for f in fields(cls)}


def test_written_files_state_every_key():
    """Every key is written, nulls included, so that no key of a written file takes a silent default."""
    data = json.loads(full_params().to_json())
    assert set(data) == _nested_keys(ConsoleParams) and set(data["master"]) == _nested_keys(MasterParams)
    assert set(data["master"]["reverb"]) == _nested_keys(ReverbParams)
    for channel in data["channels"]:
        assert set(channel) == _nested_keys(ChannelParams)
        for band in channel["eq"]:
            assert set(band) == _nested_keys(EQBand)
    assert set(data["channels"][0]["compressor"]) == _nested_keys(CompressorParams)
    assert data["channels"][1]["compressor"] is None and data["master"]["target_lufs"] is None


def _key_paths(data, prefix=""):
    """Every ``(path, container, key)`` of a settings dict (list items by index)."""
    if isinstance(data, dict):
        for key, value in data.items():
            yield f"{prefix}{key}", data, key
            yield from _key_paths(value, f"{prefix}{key}.")
    elif isinstance(data, list):
        for i, item in enumerate(data):
            yield from _key_paths(item, f"{prefix[:-1]}[{i}].")


def test_every_key_but_the_labels_is_required_by_name():
    """#18: a deleted key is an error naming it, never a default (``ceiling_dbtp`` gone is not "limiter off")."""
    optional = {"method", "version", "instrument"}
    data = full_params().to_dict()
    checked = 0
    for path, _, key in list(_key_paths(data)):
        edited = json.loads(json.dumps(data))
        container = edited
        for part in path.replace("[", ".[").split(".")[:-1]:
            container = container[int(part[1:-1])] if part.startswith("[") else container[part]
        del container[key]
        if key in optional:
            ConsoleParams.from_dict(edited)
            continue
        with pytest.raises(ParamsError, match=f"missing '{key}'"):
            ConsoleParams.from_dict(edited)
        checked += 1
    assert checked > 30


def test_labels_may_be_left_out_and_take_their_documented_defaults():
    data = full_params().to_dict()
    for key in ("method", "version"):
        del data[key]
    del data["channels"][0]["instrument"]
    params = ConsoleParams.from_dict(data)
    assert (params.method, params.version, params.channels[0].instrument) == ("manual", SCHEMA_VERSION, "other")


@pytest.mark.parametrize("value", [None, 5, "piano", ["kick"], ""])
def test_instrument_is_one_of_the_classes(value):
    data = full_params().to_dict()
    data["channels"][1]["instrument"] = value
    with pytest.raises(ParamsError, match=r"channels\[1\] \(bass\)\.instrument: .* is not an instrument class"):
        ConsoleParams.from_dict(data)


@pytest.mark.parametrize(("text", "message"), [
    pytest.param("[" * 100000 + "]" * 100000, "nested more than", id="100000-deep-array"),
    pytest.param('{"channels": ' + "[" * 40 + "]" * 40 + "}", "nested more than", id="40-deep"),
    pytest.param('{"a": "' + "[" * 100000 + '"}', "unknown key", id="brackets-in-a-string"),
    pytest.param("1" * 5000, "expected an object", id="5000-digit-integer"),
    pytest.param("{" * 3 + "\x00", "not valid JSON", id="garbage"),
    pytest.param("", "not valid JSON", id="empty"),
])
def test_malformed_text_is_one_error(text, message):
    with pytest.raises(ParamsError, match=message):
        ConsoleParams.from_json(text, source="f.json")


@pytest.mark.parametrize("literal", ["1" + "0" * 400, "-1" + "0" * 400, "1e400", "-1e400", "1" + "0" * 20])
def test_huge_numbers_are_range_errors_naming_the_field(literal):
    text = json.dumps(full_params().to_dict()).replace('"gain_db": -4.25', f'"gain_db": {literal}', 1)
    assert literal in text
    with pytest.raises(ParamsError, match=r"channels\[0\] \(snare\)\.gain_db: "):
        ConsoleParams.from_json(text, source="f.json")


def test_list_lengths_are_capped_before_the_items_are_read():
    from mixdown.params import MAX_CHANNELS, MAX_EQ_BANDS

    data = full_params().to_dict()
    data["channels"] = [dict(data["channels"][1], name=f"c{i}") for i in range(MAX_CHANNELS + 1)]
    with pytest.raises(ParamsError, match=rf"channels: {MAX_CHANNELS + 1} items; at most {MAX_CHANNELS}"):
        ConsoleParams.from_dict(data)
    data = full_params().to_dict()
    data["channels"][0]["eq"] = [None] * 1_000_000  # refused by length, not item by item
    with pytest.raises(ParamsError, match=rf"eq: 1000000 items; at most {MAX_EQ_BANDS}"):
        ConsoleParams.from_dict(data)


def test_a_huge_file_is_refused_unread(tmp_path):
    from mixdown.limits import MAX_SETTINGS_BYTES

    path = tmp_path / "big.json"
    path.write_bytes(b" " * (MAX_SETTINGS_BYTES + 1))
    with pytest.raises(ParamsError, match="larger than"):
        ConsoleParams.load(path)
