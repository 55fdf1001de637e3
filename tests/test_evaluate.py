"""`mixdown evaluate`: rows, oracle floor, summaries, plots, listening files, resuming, errors.

One tiny synthetic dataset (3 songs x 3 s at 22.05 kHz, the settings known) is evaluated
once with mono, random and rules; the tests check what was written against references:
the CSV against fresh metrics, the summary against medians computed from the CSV, the
oracle against the target, the figures' analysis against known signals.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import matplotlib.image
import numba
import numpy as np
import pytest
import torch

from mixdown import cli, mixers
from mixdown.audio import load_audio
from mixdown.console import render
from mixdown.errors import MixdownError
from mixdown.evaluate import (
    EvalConfig,
    available_methods,
    excerpt,
    load_song,
    run_evaluation,
    select_songs,
)
from mixdown.evaluation import analysis, plots
from mixdown.evaluation.results import (
    AUDIO_METRICS,
    COLUMNS,
    PARAM_METRICS,
    ResultsTable,
)
from mixdown.evaluation.summary import (
    GROUP_TITLES,
    METRICS,
    ORACLE,
    format_value,
    improvement_table,
    quantile,
)
from mixdown.metrics import evaluate_mix
from mixdown.mixers.reverse import ReverseConfig
from mixdown.params import ConsoleParams
from mixdown.synth.synthetic import SynthConfig, build_dataset

SR = 22050
SONGS = 3
METHODS = ("mono", "random", "rules")
ALL_METHODS = (*METHODS, ORACLE)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One torch and numba thread: these short signals gain nothing from thread hand-offs."""
    before = torch.get_num_threads(), numba.get_num_threads()
    torch.set_num_threads(1)
    numba.set_num_threads(1)
    yield
    torch.set_num_threads(before[0])
    numba.set_num_threads(before[1])


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("dataset")
    build_dataset(root, SONGS, SynthConfig(seed=11, sample_rate=SR, duration_s=3.0, min_stems=2, max_stems=3))
    return root


@pytest.fixture(scope="module")
def evaluated(dataset: Path, tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("eval")
    calls = []
    result = run_evaluation(EvalConfig(str(dataset), str(out), METHODS),
                            progress=lambda done, total: calls.append((done, total)))
    return result, out, calls


def _csv_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as file:
        return list(csv.DictReader(file))


def test_every_song_and_method_gets_one_row_of_finite_metrics(evaluated, dataset):
    result, out, calls = evaluated
    rows = _csv_rows(out / "metrics.csv")
    assert list(rows[0]) == list(COLUMNS)
    songs = sorted(p.name for p in dataset.iterdir() if p.is_dir())
    assert sorted((r["song"], r["method"]) for r in rows) == sorted((s, m) for s in songs for m in ALL_METHODS)
    assert (result.computed, result.reused, result.methods) == (len(rows), 0, list(ALL_METHODS))
    assert calls[0] == (0, len(rows)) and calls[-1] == (len(rows), len(rows))
    for row in rows:
        assert row["output"] == "params" and float(row["seconds"]) == 3.0
        values = {name: float(row[name]) for name in AUDIO_METRICS}
        if row["method"] == ORACLE:
            values.pop("si_sdr_db")  # an exact copy may be +inf
        assert all(math.isfinite(v) for v in values.values()), row
        for name in ("median_gain_balance_db", "median_pan", "median_eq_response_db", "median_reverb_send_db"):
            assert math.isfinite(float(row[name])) and float(row[name]) >= 0.0


def test_rows_equal_metrics_recomputed_from_the_listening_files(evaluated):
    result, out, _ = evaluated
    song = result.figure_song
    target, rate = load_audio(out / "listen" / song / "target.wav")
    row = next(r for r in _csv_rows(out / "metrics.csv") if r["song"] == song and r["method"] == "rules")
    mix, _ = load_audio(out / "listen" / song / "rules.wav")
    expected = evaluate_mix(mix, target, rate)
    for name in ("stereo_mrstft", "mrstft", "si_sdr_db", "loudness_diff_lu", "diff_spectral_centroid_hz"):
        assert float(row[name]) == pytest.approx(expected[name], rel=1e-9, abs=1e-12), name


def test_oracle_renders_the_truth_and_matches_the_target(evaluated, dataset):
    result, out, _ = evaluated
    for row in _csv_rows(out / "metrics.csv"):
        if row["method"] == ORACLE:
            assert float(row["stereo_mrstft"]) < 1e-4 and float(row["si_sdr_db"]) > 100.0
            assert all(float(row[name]) == 0.0 for name in PARAM_METRICS if not math.isnan(float(row[name])))
    song = result.figure_song
    written = ConsoleParams.load(out / "listen" / song / "oracle.params.json")
    assert written == ConsoleParams.load(dataset / song / "params.json").ordered_like([c.name for c in written.channels])
    oracle, _ = load_audio(out / "listen" / song / "oracle.wav")
    target, _ = load_audio(dataset / song / "mix.wav")
    np.testing.assert_allclose(oracle, target, atol=1e-5)


def test_listening_files_are_the_renders_of_the_written_settings(evaluated, dataset):
    result, out, _ = evaluated
    folder = out / "listen" / result.figure_song
    assert sorted(p.name for p in folder.glob("*.wav")) == sorted(f"{m}.wav" for m in (*ALL_METHODS, "target"))
    song = select_songs(dataset, None, None)[0]
    multitrack, target = load_song(song)
    np.testing.assert_array_equal(load_audio(folder / "target.wav")[0], target)
    for method in METHODS:
        params = ConsoleParams.load(folder / f"{method}.params.json")
        assert params.method == method
        np.testing.assert_allclose(load_audio(folder / f"{method}.wav")[0], render(multitrack, params), atol=1e-6)


def test_summary_medians_and_quartiles_are_those_of_the_csv(evaluated):
    _, out, _ = evaluated
    rows = _csv_rows(out / "metrics.csv")
    summary = {(r["method"], r["metric"]): r for r in _csv_rows(out / "summary.csv")}
    assert len(summary) == len(ALL_METHODS) * len(METRICS)
    markdown = (out / "summary.md").read_text()
    for spec in METRICS:
        for method in ALL_METHODS:
            values = np.array([float(r[spec.name]) for r in rows if r["method"] == method])
            values = values[~np.isnan(values)]
            if spec.absolute:
                values = np.abs(values)
            cell = summary[(method, spec.name)]
            assert int(cell["count"]) == values.size
            if not values.size:
                assert math.isnan(float(cell["median"]))
                continue
            assert float(cell["median"]) == pytest.approx(np.median(values), rel=1e-12, abs=1e-15)
            if np.isfinite(values).all():
                q25, q75 = np.percentile(values, [25, 75])
                assert float(cell["q25"]) == pytest.approx(q25, rel=1e-12, abs=1e-15)
                assert float(cell["q75"]) == pytest.approx(q75, rel=1e-12, abs=1e-15)
            text = f"{format_value(float(cell['median']))} [{format_value(float(cell['q25']))}, " \
                   f"{format_value(float(cell['q75']))}]"
            line = next(line for line in markdown.splitlines() if line.startswith(f"| {spec.label}"))
            assert text in line, (spec.name, method)


def test_improvement_over_baselines_is_the_ratio_of_means_over_shared_songs():
    losses = {("a", "mono"): 2.0, ("b", "mono"): 4.0, ("a", "random"): 3.0, ("b", "random"): 1.0,
              ("a", "dmc"): 1.0, ("b", "dmc"): 2.0, ("c", "dmc"): 9.0,  # song c has no baseline: left out
              ("a", ORACLE): 0.0, ("b", ORACLE): 0.0}
    rows = [{"song": song, "method": method, "stereo_mrstft": value} for (song, method), value in losses.items()]
    table = improvement_table(rows, ["mono", "random", "dmc", ORACLE])
    assert table.header == ("method", "vs mono", "vs random")
    assert [[c.text for c in row] for row in table.rows] == [["dmc", "+50.0 % (2/2)", "+25.0 % (1/2)"]]
    assert improvement_table(rows, ["dmc", ORACLE]) is None  # no baseline evaluated


def test_report_holds_the_improvement_table_of_the_csv(evaluated):
    _, out, _ = evaluated
    rows = _csv_rows(out / "metrics.csv")
    markdown = (out / "summary.md").read_text()
    mono = {r["song"]: float(r["stereo_mrstft"]) for r in rows if r["method"] == "mono"}
    for method in (m for m in METHODS if m not in ("mono", "random")):
        ours = {r["song"]: float(r["stereo_mrstft"]) for r in rows if r["method"] == method}
        gain = 1 - sum(ours.values()) / sum(mono[s] for s in ours)
        line = next(line for line in markdown.splitlines() if line.startswith(f"| {method} |"))
        assert f"{100 * gain:+.1f} % " in line.split("|")[2]


def test_best_median_is_bold_and_the_oracle_never_is(evaluated):
    _, out, _ = evaluated
    summary = {(r["method"], r["metric"]): float(r["median"]) for r in _csv_rows(out / "summary.csv")}
    line = next(line for line in (out / "summary.md").read_text().splitlines() if line.startswith("| stereo MR-STFT"))
    cells = [c.strip() for c in line.strip("|").split("|")][1:]
    best = min(METHODS, key=lambda m: summary[(m, "stereo_mrstft")])
    assert [c.startswith("**") for c in cells] == [m == best for m in ALL_METHODS]


def test_plots_are_pngs_of_the_expected_size(evaluated):
    _, out, _ = evaluated
    metrics = {group: [s for s in METRICS if s.group == group] for group in GROUP_TITLES}
    metrics["params"] = [s for s in metrics["params"]  # the mixers' EQ layouts never match the truth's
                         if s.name not in ("median_eq_gain_db", "median_eq_freq_oct")]
    expected = {f"box_{group}.png": plots.grid_size_px(len(specs)) for group, specs in metrics.items()}
    expected |= {"spectrum.png": plots.FIGURE_SIZE_PX, "panning.png": plots.FIGURE_SIZE_PX}
    assert sorted(p.name for p in (out / "plots").iterdir()) == sorted(expected)
    assert plots.grid_size_px(18) == (990, 1540)
    for name, (width, height) in expected.items():
        path = out / "plots" / name
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        image = matplotlib.image.imread(path)
        assert image.shape[:2] == (height, width), name
        assert image[..., :3].std() > 0.05  # something is drawn
    html = (out / "report.html").read_text()
    assert all(f'src="plots/{name}"' in html for name in expected)
    assert 'src="listen/song_00000/rules.wav"' in html and "<table>" in html


def test_resuming_recomputes_only_missing_rows(evaluated, dataset, tmp_path):
    _, out, _ = evaluated
    rows = _csv_rows(out / "metrics.csv")
    calls = []
    again = run_evaluation(EvalConfig(str(dataset), str(out), METHODS), progress=lambda *a: calls.append(a))
    assert (again.computed, again.reused, calls) == (0, len(rows), [(0, 0)])
    assert _csv_rows(out / "metrics.csv") == rows  # timestamps included
    # An interrupted run: two rows and a listening file missing; two worker processes finish it.
    shutil.copytree(out, tmp_path / "out")
    kept = [r for r in rows if not (r["song"] == "song_00001" and r["method"] in ("mono", "rules"))]
    with open(tmp_path / "out" / "metrics.csv", "w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(kept)
    (tmp_path / "out" / "listen" / "song_00000" / "random.wav").unlink()
    resumed = run_evaluation(EvalConfig(str(dataset), str(tmp_path / "out"), METHODS, workers=2))
    assert (resumed.computed, resumed.reused) == (2, len(kept))
    after = _csv_rows(tmp_path / "out" / "metrics.csv")
    assert after[:len(kept)] == kept
    recomputed = {(r["song"], r["method"]): r for r in after[len(kept):]}
    for key, row in recomputed.items():
        old = next(r for r in rows if (r["song"], r["method"]) == key)
        assert float(row["stereo_mrstft"]) == pytest.approx(float(old["stereo_mrstft"]), rel=1e-6)
    np.testing.assert_array_equal(load_audio(tmp_path / "out" / "listen" / "song_00000" / "random.wav")[0],
                                  load_audio(out / "listen" / "song_00000" / "random.wav")[0])


class SumMixer:
    """Audio out, no settings: the stems summed (an audio-only method, as Mix-Wave-U-Net is)."""

    name = "sum"
    capabilities = mixers.Capabilities(gives_params=False)

    def run(self, multitrack, target=None, reference=None, progress=None):
        return mixers.MethodOutput(mix=multitrack.to_array().sum(axis=0))


def test_cli_evaluates_an_audio_only_method_on_excerpts(dataset, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(mixers.METHODS, "sum", mixers.MethodInfo(f"{__name__}:SumMixer", SumMixer.capabilities,
                                                                 "the stems summed"))
    out = tmp_path / "out"
    code = cli.main(["evaluate", str(dataset), "--methods", "sum,mono", "--out", str(out), "--songs", "1",
                     "--seconds", "2", "--song", "song_00000"])
    assert code == 0
    assert "| stereo MR-STFT" in capsys.readouterr().out
    rows = {r["method"]: r for r in _csv_rows(out / "metrics.csv")}
    assert set(rows) == {"sum", "mono", ORACLE}
    assert rows["sum"]["output"] == "audio" and math.isnan(float(rows["sum"]["render_s"]))
    assert all(math.isnan(float(rows["sum"][name])) for name in PARAM_METRICS)
    assert all(float(r["seconds"]) == 2.0 for r in rows.values())
    song = select_songs(dataset, None, 1)[0]
    multitrack, target = load_song(song, 2.0)
    assert multitrack.num_frames == 2 * SR
    expected = evaluate_mix(multitrack.to_array().sum(axis=0), target, SR)
    assert float(rows["sum"]["stereo_mrstft"]) == pytest.approx(expected["stereo_mrstft"], rel=1e-9)
    # the oracle on an excerpt: near the target, though loudness is measured on the excerpt alone
    assert float(rows[ORACLE]["stereo_mrstft"]) < 0.1 * float(rows["mono"]["stereo_mrstft"])
    listen = out / "listen" / "song_00000"
    assert (listen / "sum.wav").exists() and not (listen / "sum.params.json").exists()


@pytest.mark.parametrize("argv, message", [
    (["--methods", "mono,nonesuch"], "unknown method 'nonesuch'; available: "),
    (["--methods", "mono,oracle"], "the oracle (true settings rendered) is added by itself"),
    (["--methods", "mono,mono"], "a method is listed twice"),
    (["--methods", "mono", "--song", "song_00099"], "song 'song_00099' is not among the 3 songs evaluated"),
    (["--methods", "mono", "--songs", "0"], "argument --songs: 0 is outside 1..10000000"),
    (["--methods", "mono", "--seconds", "-1"], "argument --seconds: -1 is outside"),
    (["--methods", "mono", "--reverse-steps", "-1"], "argument --reverse-steps: -1 is outside 0.."),
    (["--methods", "mono", "--split", "test"], "no songs in the test split of"),
])
def test_bad_options_end_with_one_error_line_and_no_output(dataset, tmp_path, capsys, argv, message):
    out = tmp_path / "out"
    assert cli.main(["evaluate", str(dataset), "--out", str(out), *argv]) == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], lines
    assert not (out / "metrics.csv").exists()


def test_unknown_method_lists_every_available_one(dataset, tmp_path):
    with pytest.raises(MixdownError) as info:
        run_evaluation(EvalConfig(str(dataset), str(tmp_path), ("nonesuch",)))
    assert all(name in str(info.value) for name in mixers.METHODS)
    assert available_methods() == list(mixers.METHODS)


class MissingWeights(mixers.SettingsMethod):
    name = "learned"

    def __init__(self):
        raise MixdownError("the weights are not installed (nowhere.pt)")


def test_a_method_whose_weights_are_missing_is_refused_before_any_work(dataset, tmp_path, monkeypatch):
    monkeypatch.setitem(mixers.METHODS, "learned", mixers.MethodInfo(f"{__name__}:MissingWeights",
                                                                     mixers.Capabilities(), "weights not installed"))
    with pytest.raises(MixdownError, match=r"method 'learned' cannot be used: the weights are not installed"):
        run_evaluation(EvalConfig(str(dataset), str(tmp_path / "out"), ("mono", "learned")))
    assert not (tmp_path / "out").exists()


def test_missing_dataset_and_foreign_output_folder_are_refused(dataset, evaluated, tmp_path):
    with pytest.raises(MixdownError, match="does not exist"):
        run_evaluation(EvalConfig(str(tmp_path / "nowhere"), str(tmp_path / "out"), METHODS))
    _, out, _ = evaluated
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    before = (copy / "metrics.csv").read_bytes()
    with pytest.raises(MixdownError, match=r"holds results of another evaluation \(seconds differ"):
        run_evaluation(EvalConfig(str(dataset), str(copy), METHODS, seconds=2.0))
    assert (copy / "metrics.csv").read_bytes() == before
    settings = json.loads((copy / "evaluation.json").read_text())
    assert settings["seconds"] is None and settings["dataset"] == str(dataset.resolve())


def test_reverse_settings_bind_only_runs_that_evaluate_reverse(dataset, evaluated, tmp_path):
    _, out, _ = evaluated
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    settings = json.loads((copy / "evaluation.json").read_text())
    assert "reverse" not in settings  # no reverse rows: its settings are not recorded
    other = ReverseConfig(steps=7)
    again = run_evaluation(EvalConfig(str(dataset), str(copy), METHODS, reverse=other))
    assert again.computed == 0
    settings["reverse"] = json.loads(json.dumps(dataclasses.asdict(ReverseConfig())))
    (copy / "evaluation.json").write_text(json.dumps(settings))
    before = (copy / "metrics.csv").read_bytes()
    with pytest.raises(MixdownError, match=r"holds results of another evaluation \(reverse differ"):
        run_evaluation(EvalConfig(str(dataset), str(copy), (*METHODS, "reverse"), reverse=other))
    assert (copy / "metrics.csv").read_bytes() == before


def test_results_table_refuses_other_columns_and_duplicate_rows(tmp_path):
    path = tmp_path / "metrics.csv"
    path.write_text("song,method,score\na,b,1.0\n")
    with pytest.raises(MixdownError, match="columns differ"):
        ResultsTable(path)
    path.unlink()
    table = ResultsTable(path)
    row = {name: 0.0 for name in COLUMNS} | {"song": "a", "method": "mono", "output": "params", "stems": 2,
                                             "finished_at": "now", "si_sdr_db": math.inf, "median_pan": math.nan}
    table.append([row])
    with pytest.raises(MixdownError, match="already hold song a with method mono"):
        table.append([row])
    loaded = ResultsTable(path)
    assert loaded.rows[0]["si_sdr_db"] == math.inf and math.isnan(loaded.rows[0]["median_pan"])
    assert loaded.rows[0]["stems"] == 2 and loaded.done() == {("a", "mono")}


@pytest.mark.parametrize("values, q", [
    ([3.0, 1.0, 2.0, 5.0], 0.25), ([3.0, 1.0, 2.0, 5.0], 0.5), ([3.0, 1.0, 2.0, 5.0], 0.75),
    ([4.0], 0.25), ([1.0, 2.0], 1.0), ([-2.0, 7.5, 7.5, 0.0, 1.0], 0.3),
])
def test_quantile_equals_numpy_on_finite_values(values, q):
    assert quantile(np.array(values), q) == pytest.approx(np.percentile(values, 100 * q), rel=1e-12)


@pytest.mark.parametrize("values, q, expected", [
    ([1.0, math.inf], 0.5, math.inf),  # as np.median
    ([1.0, math.inf], 0.0, 1.0),
    ([1.0, 2.0, 3.0, 4.0, math.inf], 0.75, 4.0),  # an order statistic: no interpolation needed
    ([1.0, 2.0, 3.0, math.inf], 0.75, math.inf),  # between 3 and inf
    ([-math.inf, 1.0], 0.5, -math.inf),
    ([], 0.5, math.nan),
])
def test_quantile_interpolates_in_the_extended_reals(values, q, expected):
    result = quantile(np.array(values), q)
    assert (math.isnan(result) and math.isnan(expected)) or result == expected


def test_excerpt_is_central_and_never_longer_than_the_song():
    assert excerpt(100, 10, None) == slice(0, 100)
    assert excerpt(100, 10, 4.0) == slice(30, 70)
    assert excerpt(101, 10, 4.0) == slice(30, 70)
    assert excerpt(100, 10, 60.0) == slice(0, 100)


@pytest.mark.parametrize("freq_hz, amplitude", [(1000.0, 0.5), (250.0, 0.1), (4000.0, 0.8)])
def test_band_spectrum_of_a_sine_puts_its_power_in_its_band(freq_hz, amplitude):
    t = np.arange(2 * SR) / SR
    sine = amplitude * np.sin(2 * np.pi * freq_hz * t)
    centres, level_db = analysis.band_spectrum_db(np.stack([sine, sine]), SR)
    band = int(np.argmin(np.abs(np.log2(centres / freq_hz))))
    assert level_db[band] == pytest.approx(10 * np.log10(amplitude**2 / 2), abs=0.1)  # power A^2 / 2
    others = np.delete(level_db, [band - 1, band, band + 1])
    assert others.max() < level_db[band] - 40.0


def test_band_spectrum_of_white_noise_rises_3_db_per_octave():
    noise = np.random.default_rng(0).standard_normal(4 * SR) * 0.1
    centres, level_db = analysis.band_spectrum_db(np.stack([noise, noise]), SR, bands_per_octave=1)
    mid = (centres > 100) & (centres < 8000)  # whole bins in every band
    slope = np.polyfit(np.log2(centres[mid]), level_db[mid], 1)[0]
    assert slope == pytest.approx(10 * np.log10(2), abs=0.3)
    _, edges = analysis.octave_bands(SR, 1)
    covered = (edges[-1] - edges[0]) / (SR / 2)  # white: the bands hold this share of the power 0.01
    assert (10 ** (level_db / 10)).sum() == pytest.approx(0.01 * covered, rel=0.03)


@pytest.mark.parametrize("pan", [-1.0, -0.4, 0.0, 0.3, 1.0])
def test_band_panning_of_one_panned_source_is_its_pan_index_in_every_band(pan):
    noise = np.random.default_rng(1).standard_normal(2 * SR).astype(np.float64) * 0.1
    theta = (pan + 1.0) * math.pi / 4.0  # constant-power law
    left, right = math.cos(theta), math.sin(theta)
    expected = (right - left) * abs(right - left) / (left**2 + right**2)
    centres, mean, rms = analysis.band_panning(np.stack([left * noise, right * noise]), SR)
    assert centres.size >= 8
    np.testing.assert_allclose(mean, expected, atol=1e-9)
    np.testing.assert_allclose(rms, abs(expected), atol=1e-9)


def test_band_panning_of_two_sources_in_separate_bands():
    rng = np.random.default_rng(2)
    t = np.arange(2 * SR) / SR
    low = np.sin(2 * np.pi * 120.0 * t)  # hard left
    high = 0.01 * rng.standard_normal(t.size)  # centred (its leakage into the low bands is tiny)
    centres, mean, _ = analysis.band_panning(np.stack([low + high, high]), SR)
    assert mean[np.argmin(np.abs(centres - 125.0))] == pytest.approx(-1.0, abs=0.01)
    assert np.abs(mean[centres > 1000.0]).max() < 1e-9


def test_octave_bands_cover_20_hz_to_nyquist():
    centres, edges = analysis.octave_bands(44100, 3)
    assert edges[0] >= analysis.LOW_HZ and edges[-1] <= 22050.0
    np.testing.assert_allclose(edges[1:-1], np.sqrt(centres[:-1] * centres[1:]))
    assert 1000.0 in centres and centres.size == 29  # 25 Hz .. 16 kHz


def test_run_all_runs_each_benchmark_and_collects_its_markdown(tmp_path):
    scripts = tmp_path / "benchmarks"
    scripts.mkdir()
    (scripts / "fast_speed.py").write_text(
        "from pathlib import Path\n"
        "out = Path(__file__).parent / 'results'\n"
        "(out / 'fast.md').write_text('# Fast benchmark\\n\\n| a | b |\\n|---|---|\\n| 1 | 2 |\\n')\n")
    (scripts / "broken_eval.py").write_text("import sys\nprint('boom')\nsys.exit(3)\n")
    (scripts / "results").mkdir()
    (scripts / "results" / "old.md").write_text("# Old results\n\n```\n# not a heading\n```\n")
    runner = Path(__file__).parents[1] / "benchmarks" / "run_all.py"
    done = subprocess.run([sys.executable, str(runner), "--scripts", str(scripts), "--logs", str(tmp_path / "logs")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stderr  # one script failed
    readme = (scripts / "results" / "README.md").read_text()
    assert "| broken_eval.py | failed (exit 3) |" in readme and "| fast_speed.py | ok |" in readme
    assert readme.count("| fast_speed.py | ok | ") == 1 and "| fast.md |" in readme  # attributed to its script
    assert readme.index("## Fast benchmark") < readme.index("## Old results")  # files in name order, shifted
    assert "| 1 | 2 |" in readme and "\n# not a heading\n" in readme  # code blocks untouched
    assert (tmp_path / "logs" / "broken_eval.log").read_text().strip() == "boom"


class ReferenceRecorder:
    """A method that takes a reference: records what it was given, mixes mono."""

    name = "recorder"
    capabilities = mixers.Capabilities(takes_reference=True)
    calls: list[tuple[int, np.ndarray | None]] = []

    def run(self, multitrack, target=None, reference=None, progress=None):
        ReferenceRecorder.calls.append((multitrack.num_frames, reference))
        return mixers.MethodOutput(mix=multitrack.to_array().sum(axis=0))


def test_reference_segment_gives_the_first_half_and_scores_the_second(tmp_path, monkeypatch):
    monkeypatch.setitem(mixers.METHODS, "recorder", mixers.MethodInfo(
        f"{__name__}:ReferenceRecorder", ReferenceRecorder.capabilities, "records its reference"))
    monkeypatch.setattr(ReferenceRecorder, "calls", [])
    root = tmp_path / "long"
    build_dataset(root, 1, SynthConfig(seed=5, sample_rate=SR, duration_s=7.0, min_stems=2, max_stems=2))
    out = tmp_path / "out"
    run_evaluation(EvalConfig(str(root), str(out), ("recorder", "mono"), reference_segment=True, seconds=2.0))
    mix, _ = load_audio(root / "song_00000" / "mix.wav")
    half = mix.shape[1] // 2
    (frames, reference), = ReferenceRecorder.calls  # mono takes no reference and is not recorded
    np.testing.assert_array_equal(reference, mix[:, :half])
    start = half + (mix.shape[1] - half - frames) // 2  # the central 2 s of the second half
    target, _ = load_audio(out / "listen" / "song_00000" / "target.wav")
    assert frames == 2 * SR and start >= half
    np.testing.assert_array_equal(target, mix[:, start:start + frames])
    assert json.loads((out / "evaluation.json").read_text())["reference_segment"] is True
    with pytest.raises(MixdownError, match="another evaluation \\(reference_segment differ"):
        run_evaluation(EvalConfig(str(root), str(out), ("mono",), seconds=2.0))


def test_reference_segment_too_short_for_a_style_is_one_error_naming_the_song(dataset, tmp_path, capsys):
    code = cli.main(["evaluate", str(dataset), "--methods", "style", "--out", str(tmp_path / "o"),
                     "--reference-segment", "--songs", "1"])
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert code != 0 and len(lines) == 1  # 3-s songs: 1.5-s references
    assert "song_00000, style: song_00000: the first half of its mix: the reference is 1.50 s long" in lines[0]
