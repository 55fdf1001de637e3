"""Training recipes: configs, batching helpers, a tiny end-to-end run, resume, export, DDP."""

from __future__ import annotations

import csv
import dataclasses
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
import yaml

from mixdown.cli import main
from mixdown.console import ConsoleTensors
from mixdown.data.songs import SegmentMeta
from mixdown.errors import MixdownError
from mixdown.mixers.estimator import EXCERPT_S
from mixdown.models import load_model
from mixdown.multitrack import INSTRUMENT_CLASSES
from mixdown.params import ChannelParams, CompressorParams, ConsoleParams
from mixdown.synth.synthetic import SynthConfig, build_dataset
from mixdown.train import (
    TrainConfig,
    config_yaml,
    instrument_ids,
    load_recipe,
    load_train_config,
    spread_indices,
    true_settings,
)

REPO = Path(__file__).resolve().parents[1]
RATE = 16000
SYNTH = SynthConfig(seed=9, sample_rate=RATE, duration_s=3.0, min_stems=2, max_stems=3)

TINY_RECIPE = {
    "model": "estimator",
    "model_config": {"encoder": {"sample_rate": RATE, "n_fft": 256, "hop": 128, "n_mels": 16, "f_max_hz": 7000.0,
                                 "widths": [4, 8], "embed_dim": 8, "class_dim": 3}, "hidden": 8},
    "data": {"segment_s": 0.5, "val_segments": 2, "val_fraction": 0.25, "test_fraction": 0.0},
    "batch_size": 2,
    "max_steps": 4,
    "warmup_steps": 1,
    "val_every_steps": 2,
    "param_weight": 1.0,
    "audio_from_step": 1,
    "loss": {"fft_sizes": [128, 512]},
    "log_every_steps": 1,
    "threads": 1,
}


@pytest.fixture(scope="module")
def songs(tmp_path_factory) -> Path:
    """Four tiny synthetic songs (3 s, 2-3 stems, 16 kHz)."""
    root = tmp_path_factory.mktemp("data") / "synth"
    build_dataset(root, 4, SYNTH)
    return root


def write_recipe(folder: Path, songs: Path, **overrides) -> Path:
    recipe = {**TINY_RECIPE, "out": str(folder / "run"), "export": str(folder / "tiny.pt"), **overrides}
    recipe["data"] = {**TINY_RECIPE["data"], "sources": [{"root": str(songs)}], **overrides.get("data", {})}
    path = folder / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe), encoding="utf-8")
    return path


# ----------------------------------------------------------------------------- configs


def test_shipped_recipe_loads_and_matches_the_mixer():
    config = load_train_config(REPO / "configs" / "estimator.yaml")
    assert config.model == "estimator"
    assert config.data.segment_s == EXCERPT_S  # the mixer analyses excerpts as long as the training segments
    assert config.export == "src/mixdown/weights/estimator.pt"
    assert config.data.synth is not None and not Path(config.data.sources[0].root).is_absolute()
    assert config.model_config_object().sample_rate == config.data.synth.sample_rate


@pytest.mark.parametrize("recipe, message", [
    ({"modle": "estimator"}, r"unknown keys \['modle'\]"),
    ({"data": {"segment_z": 1}}, r"recipe.yaml.data: unknown keys \['segment_z'\]"),
    ({"model_config": {"hiden": 2}}, r"model_config: unknown keys \['hiden'\]"),
    ({"model": "dmc9"}, "unknown model 'dmc9'"),
    ({"batch_size": 0}, "batch_size must be positive"),
    ({"lr": "fast"}, "lr: expected float"),
    ({"baselines": ["mono", "loud"]}, r"baselines \['loud'\] are not mixers"),
    ({"param_weight": 0.0, "audio_from_step": 5}, "audio_from_step > 0 needs param_weight > 0"),
    ({"data": {"synth": {"min_stems": 9, "max_stems": 2}}}, "data.synth: stem counts"),
    ({"loss": {"fft_sizes": []}}, "loss: fft_sizes must be"),
])
def test_bad_recipes_name_the_problem(tmp_path, recipe, message):
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe), encoding="utf-8")
    with pytest.raises(MixdownError, match=message):
        load_train_config(path)


def test_every_shipped_recipe_picks_its_kind_by_model_key():
    kinds = {name: type(load_recipe(REPO / "configs" / f"{name}.yaml")).__name__
             for name in ("estimator", "dmc", "waveunet", "emulator", "forest")}
    assert kinds == {"estimator": "TrainConfig", "dmc": "TrainConfig", "waveunet": "TrainConfig",
                     "emulator": "EmulatorTrainConfig", "forest": "ForestRecipe"}
    emulator, dmc = load_recipe(REPO / "configs" / "emulator.yaml"), load_recipe(REPO / "configs" / "dmc.yaml")
    assert dmc.model_config_object().emulator == emulator.model_config  # the DMC loads what the emulator recipe writes
    assert dmc.model_config["emulator_weights"] == emulator.export


def test_every_shipped_weights_file_is_written_by_the_last_recipe_its_command_names():
    import re

    from mixdown.weights import RECIPES

    for filename, command in RECIPES.items():
        recipes = re.findall(r"mixdown train (configs/\S+\.yaml)", command)
        assert recipes, filename
        assert Path(load_recipe(REPO / recipes[-1]).export).name == filename


@pytest.mark.parametrize("recipe, args, message", [
    ("model: forest\nsongs: 1\n", ["--max-steps", "3"], "bad option: --max-steps does not apply to a forest recipe"),
    ("model: forest\nsongs: 1\n", [], "has no export path"),
    ("model: emulator\nsteps: 3\n", [], "unknown keys ['steps']"),
])
def test_train_command_refuses_options_and_keys_a_recipe_lacks(tmp_path, capsys, recipe, args, message):
    path = tmp_path / "recipe.yaml"
    path.write_text(recipe, encoding="utf-8")
    assert main(["train", str(path), *args]) == 2
    assert message in capsys.readouterr().err


def test_recipe_yaml_round_trips(tmp_path):
    config = TrainConfig(model_config={"hidden": 4}, max_steps=7)
    path = tmp_path / "again.yaml"
    path.write_text(config_yaml(config), encoding="utf-8")
    assert load_train_config(path) == config


@pytest.mark.parametrize("total, count, expected", [(3, 5, [0, 1, 2]), (10, 3, [0, 4, 9]), (5, 5, [0, 1, 2, 3, 4])])
def test_spread_indices(total, count, expected):
    assert spread_indices(total, count) == expected


def _meta(names, instruments, params, gains) -> SegmentMeta:
    return SegmentMeta(song="s", stem_names=tuple(names), instruments=tuple(instruments), stereo=(False,) * len(names),
                       offset_frames=0, sample_rate=RATE, index=0, epoch=0, stem_gain_db=tuple(gains), params=params)


def test_true_settings_pad_and_follow_stem_normalisation():
    comp = CompressorParams(threshold_db=-20.0, ratio=4.0)
    params = ConsoleParams([ChannelParams("a", "kick", gain_db=-3.0, compressor=comp),
                            ChannelParams("b", "bass", gain_db=2.0)], sample_rate=RATE)
    metas = [_meta(["a", "b"], ["kick", "bass"], params, [6.0, -2.0]),
             _meta(["a"], ["kick"], ConsoleParams([ChannelParams("a", "kick", gain_db=1.0)], sample_rate=RATE), [0.0])]
    settings = true_settings(metas, 3)
    assert isinstance(settings, ConsoleTensors) and settings.gain_db.shape == (2, 3)
    # a stem made 6 dB louder needs its fader 6 dB lower and its threshold 6 dB higher for the same mix
    torch.testing.assert_close(settings.gain_db[0], torch.tensor([-9.0, 4.0, 0.0]))
    torch.testing.assert_close(settings.threshold_db[0, 0], torch.tensor(-14.0))
    assert settings.mute.tolist() == [[False, False, True], [False, True, True]]
    assert true_settings([dataclasses.replace(metas[0], params=None)], 2) is None
    ids = instrument_ids(metas, 3)
    other = INSTRUMENT_CLASSES.index("other")
    assert ids.tolist() == [[INSTRUMENT_CLASSES.index("kick"), INSTRUMENT_CLASSES.index("bass"), other],
                            [INSTRUMENT_CLASSES.index("kick"), other, other]]


# ----------------------------------------------------------------------------- end to end


def _metrics(run: Path) -> list[dict[str, str]]:
    rows = []
    for path in sorted((run / "logs").glob("version_*/metrics.csv")):
        with path.open() as f:
            rows += list(csv.DictReader(f))
    return rows


def test_train_validate_checkpoint_export_resume(tmp_path, songs, capsys):
    recipe = write_recipe(tmp_path, songs)
    assert main(["train", str(recipe)]) == 0
    run = tmp_path / "run"
    assert "wrote" in capsys.readouterr().err
    assert yaml.safe_load((run / "train.yaml").read_text())["max_steps"] == 4
    rows = _metrics(run)
    val = [r for r in rows if r.get("val/stereo_loss")]
    assert len(val) == 2 and all(float(r["val/mono_loss"]) > 0 and float(r["val/random_loss"]) > 0 for r in val)
    assert [r["train/param_loss"] for r in rows if r.get("train/loss")][0]
    assert not [r for r in rows if r.get("train/loss")][0]["train/stereo_loss"]  # step 0: parameters only
    assert [r for r in rows if r.get("train/loss")][-1]["train/stereo_loss"]
    last = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["global_step"] == 4 and last["hyper_parameters"]["train_config"]["max_steps"] == 4
    exported = load_model(tmp_path / "tiny.pt")
    weights = {k.removeprefix("model."): v for k, v in last["state_dict"].items()}
    best = torch.load(next(run.glob("checkpoints/step*.ckpt")), weights_only=True)["state_dict"]
    for key, value in exported.model.state_dict().items():
        assert torch.equal(value, best[f"model.{key}"]) and key in weights

    assert main(["train", str(recipe), "--resume", "last", "--max-steps", "6"]) == 0
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 6

    assert main(["train", str(recipe), "--export-only", str(run / "checkpoints" / "last.ckpt"),
                 "--export", str(tmp_path / "again.pt")]) == 0
    resumed = load_model(tmp_path / "again.pt").model.state_dict()
    final = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    assert all(torch.equal(v, final[f"model.{k}"]) for k, v in resumed.items())


@pytest.mark.parametrize("args, message", [
    (["missing.yaml"], "cannot read training config"),
    (["RECIPE", "--resume", "nowhere.ckpt"], "checkpoint to resume from not found"),
    (["RECIPE", "--export-only", "nowhere.ckpt"], "checkpoint not found"),
    (["RECIPE", "--devices", "0"], "bad option: devices must be positive"),
])
def test_cli_errors_are_one_line(tmp_path, songs, capsys, args, message):
    recipe = write_recipe(tmp_path, songs)
    argv = ["train", *(str(recipe) if a == "RECIPE" else str(tmp_path / a) if a.endswith((".yaml", ".ckpt")) else a
                       for a in args)]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err and "\n" not in err
    assert not (tmp_path / "tiny.pt").exists()


_DDP_SCRIPT = textwrap.dedent("""
    import hashlib, os, sys
    import torch
    from lightning.pytorch.callbacks import Callback
    from mixdown import train


    def digest(module):
        state = module.model.state_dict()
        return hashlib.sha256(b"".join(state[k].numpy().tobytes() for k in sorted(state))).hexdigest()


    class Digest(Callback):
        def on_train_start(self, trainer, module):
            self.start = digest(module)

        def on_train_end(self, trainer, module):
            with open(os.path.join(sys.argv[2], f"rank{trainer.global_rank}.sha256"), "w") as f:
                f.write(f"{trainer.world_size} {trainer.global_step} {self.start} {digest(module)}")


    class System(train.MixingSystem):
        def configure_callbacks(self):
            return [Digest()]


    config = train.load_train_config(sys.argv[1])
    train.train(config, system_class=System)
""")


def test_ddp_on_two_cpu_processes_keeps_ranks_identical(tmp_path, songs):
    """Lightning's ddp launcher re-runs this script as rank 1; both ranks must end with the same weights."""
    recipe = write_recipe(tmp_path, songs, devices=2, strategy="ddp", max_steps=3, val_every_steps=3, batch_size=1)
    script = tmp_path / "ddp_run.py"
    script.write_text(_DDP_SCRIPT, encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, str(script), str(recipe), str(tmp_path)], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr[-3000:]
    digests = [(tmp_path / f"rank{r}.sha256").read_text().split() for r in (0, 1)]
    assert digests[0][:2] == ["2", "3"]
    assert digests[0] == digests[1]  # same initial and same final weights on both ranks
    assert digests[0][2] != digests[0][3]  # and training changed them
    assert load_model(tmp_path / "tiny.pt").name == "estimator"
