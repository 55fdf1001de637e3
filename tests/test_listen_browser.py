"""End to end in a real browser (Playwright + Debian chromium): a participant completes a
2-trial MUSHRA test built from the bundled demo (drawing the loop on the waveform), the ratings
land in SQLite, and `listen results` writes the report; another answers an ABX test, which the
results score. Screenshots are kept under $MIXDOWN_ARTIFACTS (or tmp_path)."""

from __future__ import annotations

import csv
import os
import socket
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
import yaml

from mixdown.cli import main
from mixdown.listening.manifest import RESPONSES_NAME, Manifest
from mixdown.listening.randomise import participant_plan, participant_trials
from mixdown.web.listen.app import create_app

RATINGS = {"rules": 100, "mono": 35, "anchor": 10}
"""What the participant gives each condition (the hidden reference, rules, gets 100)."""


@pytest.fixture(scope="session")
def demo_dir(tmp_path_factory) -> Path:
    """The bundled demo (stems and mixes), written once per session."""
    folder = tmp_path_factory.getbasetemp() / "listen-demo"
    if not (folder / "mix_rules.wav").exists():
        assert main(["demo", "-o", str(folder)]) == 0
    return folder


TEST_TYPE = "mushra"


@pytest.fixture
def test_dir(demo_dir, tmp_path, request) -> Path:
    """Two songs (two 3 s excerpts of the demo) x the rules mix (reference), the mono mix, and for
    MUSHRA an anchor; the test type is the module's TEST_TYPE unless parametrized indirectly."""
    test_type = getattr(request, "param", TEST_TYPE)
    config = {"name": "Demo listening test", "type": test_type, "seed": 5, "excerpt_s": 3.0, "reference": "rules",
              "conditions": {"rules": str(demo_dir / "mix_rules.wav"), "mono": str(demo_dir / "mix_mono.wav")},
              "songs": [{"name": "intro", "start_s": 0.0}, {"name": "later", "start_s": 8.0}]}
    path = tmp_path / "test.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    assert main(["listen", "create", str(path), "-o", str(tmp_path / "test")]) == 0
    return tmp_path / "test"


@pytest.fixture
def server(test_dir) -> Iterator[str]:
    """uvicorn serving the test on a free 127.0.0.1 port, in a thread."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    instance = uvicorn.Server(uvicorn.Config(create_app(test_dir), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=instance.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not instance.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}/"
    instance.should_exit = True
    thread.join(timeout=10)


def play_every_version(page, slots: int, reference: bool = True, x: bool = False) -> None:
    labels = (["Reference"] if reference else []) + [chr(ord("A") + slot) for slot in range(slots)] + (["X"] if x else [])
    for label in labels:
        page.get_by_role("button", name=label, exact=True).click()


def draw_loop(page, start: float, end: float) -> None:
    """Drag across the waveform from ``start`` to ``end`` (fractions of its width)."""
    box = page.locator("#timeline").bounding_box()
    y = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + start * box["width"], y)
    page.mouse.down()
    page.mouse.move(box["x"] + (start + end) / 2 * box["width"], y, steps=4)
    page.mouse.move(box["x"] + end * box["width"], y, steps=4)
    page.mouse.up()


def waveform_is_drawn(page) -> bool:
    return page.evaluate("""() => {
        const canvas = document.getElementById('waveform');
        const pixels = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
        let painted = 0;
        for (let i = 3; i < pixels.length; i += 4) if (pixels[i] > 0) painted++;
        return painted > canvas.width;  // more than one row of pixels: a waveform, not a blank canvas
    }""")


def test_participant_completes_test_in_chromium(chromium_browser, server, test_dir, tmp_path):
    artifacts = Path(os.environ.get("MIXDOWN_ARTIFACTS", tmp_path))
    artifacts.mkdir(parents=True, exist_ok=True)
    context = chromium_browser.new_context(viewport={"width": 1100, "height": 820})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    manifest = Manifest.load(test_dir)
    conditions = manifest.conditions
    trials = participant_trials(len(manifest.songs), len(conditions), manifest.seed, "listener-1")
    page.goto(server)

    page.get_by_label("Participant ID").fill("listener-1")
    page.get_by_role("button", name="Start", exact=True).click()
    page.get_by_role("heading", name="Training: get to know the versions").wait_for()
    page.locator("#player").wait_for(state="visible")
    play_every_version(page, 3)
    page.get_by_role("button", name="Start the test").click()

    for trial in (1, 2):
        page.get_by_role("heading", name=f"Trial {trial} of 2").wait_for()
        if trial == 2:
            page.reload()  # a closed and reopened tab resumes at the next trial
            page.get_by_role("heading", name="Trial 2 of 2").wait_for()
        page.locator("#player").wait_for(state="visible")
        assert waveform_is_drawn(page)
        next_button = page.locator("#next")
        assert next_button.is_disabled()
        assert "not played yet: A, B, C" in page.locator("#trial-status").inner_text()
        page.get_by_role("button", name="A", exact=True).click()
        page.wait_for_function("player.position() > 0.3")
        before = page.evaluate("player.position()")
        page.get_by_role("button", name="B", exact=True).click()  # switching keeps the position
        after = page.evaluate("[player.position(), player.active]")
        assert after[1] == 1 and 0.0 <= after[0] - before < 0.25
        page.get_by_role("button", name="C", exact=True).click()
        for slot, condition in enumerate(trials[trial - 1].condition_order):
            page.get_by_label(f"Rating of {chr(ord('A') + slot)}").fill(str(RATINGS[conditions[condition]]))
        draw_loop(page, 1 / 3, 2 / 3)  # the two loop sliders became a drag across the waveform (#16)
        start, end, duration = page.evaluate("[player.loopStart, player.loopEnd, player.duration]")
        assert start == pytest.approx(duration / 3, abs=0.1) and end == pytest.approx(2 * duration / 3, abs=0.1)
        page.locator("#trial-comment").fill(f"comment on trial {trial}")
        assert next_button.is_enabled()
        if trial == 1:
            page.screenshot(path=str(artifacts / "listen_trial.png"), full_page=True)
        page.get_by_role("button", name="Stop").click()
        next_button.click()

    page.get_by_role("heading", name="Almost done").wait_for()
    page.locator("#final-comment").fill("fun test")
    page.get_by_role("button", name="Finish").click()
    page.get_by_role("heading", name="Thank you").wait_for()
    page.reload()  # a returning tab resumes where it was: here, finished
    page.get_by_role("heading", name="Thank you").wait_for()
    context.close()
    assert errors == []

    db = sqlite3.connect(test_dir / RESPONSES_NAME)
    rows = db.execute("SELECT trial_index, slot, condition, rating FROM ratings "
                      "WHERE participant_id = 'listener-1'").fetchall()
    assert sorted(rows) == sorted((t, slot, conditions[c], float(RATINGS[conditions[c]]))
                                  for t in (0, 1) for slot, c in enumerate(trials[t].condition_order))
    comments = db.execute("SELECT comment FROM trials ORDER BY trial_index").fetchall()
    assert comments == [("comment on trial 1",), ("comment on trial 2",)]
    assert db.execute("SELECT comment, finished_at IS NOT NULL FROM participants").fetchall() == [("fun test", 1)]

    assert main(["listen", "results", str(test_dir), "-o", str(tmp_path / "results")]) == 0
    report = (tmp_path / "results" / "report.md").read_text()
    assert "1 registered, 1 rated at least one trial, 1 finished" in report
    assert "fun test" in report and (tmp_path / "results" / "boxplot_song_later.png").is_file()


@pytest.mark.parametrize("test_dir", ["abx"], indirect=True)
def test_abx_trials_are_answered_and_scored_in_chromium(chromium_browser, server, test_dir, tmp_path):
    """#16: an ABX test (rules vs mono, 2 songs): the participant plays A, B and X, answers each trial
    right, and `listen results` scores 2 of 2 with the binomial p-value 1/4."""
    artifacts = Path(os.environ.get("MIXDOWN_ARTIFACTS", tmp_path))
    artifacts.mkdir(parents=True, exist_ok=True)
    context = chromium_browser.new_context(viewport={"width": 1100, "height": 820})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    manifest = Manifest.load(test_dir)
    assert manifest.test_type == "abx" and manifest.conditions == ("rules", "mono")
    plan = participant_plan("abx", 2, 2, 0, manifest.seed, "listener-x")
    page.goto(server)
    page.get_by_label("Participant ID").fill("listener-x")
    page.get_by_role("button", name="Start", exact=True).click()
    page.get_by_role("heading", name="Training: get to know the versions").wait_for()
    page.locator("#player").wait_for(state="visible")
    assert page.locator("#choice").is_hidden()  # training: listen only
    play_every_version(page, 2, reference=False, x=True)
    page.get_by_role("button", name="Start the test").click()
    for index, trial in enumerate(plan):
        page.get_by_role("heading", name=f"Trial {index + 1} of 2").wait_for()
        page.locator("#player").wait_for(state="visible")
        assert waveform_is_drawn(page)
        assert page.get_by_role("button", name="Reference", exact=True).count() == 0  # ABX has no labelled reference
        next_button = page.locator("#next")
        assert "not played yet: A, B, X" in page.locator("#trial-status").inner_text()
        play_every_version(page, 2, reference=False, x=True)
        assert next_button.is_disabled()  # played everything, not answered yet
        assert "say whether X is A or B" in page.locator("#trial-status").inner_text()
        draw_loop(page, 0.25, 0.75)
        page.get_by_label("X is A" if trial.x_slot == 0 else "X is B").check()
        assert next_button.is_enabled()
        if index == 0:
            page.screenshot(path=str(artifacts / "listen_abx_trial.png"), full_page=True)
        page.get_by_role("button", name="Stop").click()
        next_button.click()
    page.get_by_role("heading", name="Almost done").wait_for()
    page.get_by_role("button", name="Finish").click()
    page.get_by_role("heading", name="Thank you").wait_for()
    context.close()
    assert errors == []

    db = sqlite3.connect(test_dir / RESPONSES_NAME)
    rows = db.execute("SELECT trial_index, condition_a, condition_b, choice, x_slot FROM choices").fetchall()
    assert sorted(rows) == sorted((i, manifest.conditions[t.condition_order[0]], manifest.conditions[t.condition_order[1]],
                                   t.x_slot, t.x_slot) for i, t in enumerate(plan))
    assert main(["listen", "results", str(test_dir), "-o", str(tmp_path / "results")]) == 0
    summary = {(r["scope"], r["condition"]): r for r in csv.DictReader((tmp_path / "results" / "summary.csv").open())}
    scored = summary[("all", "mono")]
    assert (scored["n"], scored["correct"]) == ("2", "2") and float(scored["p_value"]) == pytest.approx(0.25)
    assert "ABX" in (tmp_path / "results" / "report.md").read_text()
