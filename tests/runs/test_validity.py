"""``emocircuits validity`` end to end on the toy model: a model whose emotion is only the instruction's
word (the toy was trained to reply in the emotion it is told and nothing else) must fail the transfer
tests in every layer band, while its explicit directions steer; plus the folder and the refusals."""

from __future__ import annotations

import json
import shutil

import pytest

from circuits.cli import main
from circuits.discovery.directions import Directions
from circuits.runs import layout


def _stance_copy(run, tmp_path):
    """A copy of the toy run whose store records the stance elicitation (its circuits stand in for
    circuits found on stance prompts: the plumbing under test is the same)."""
    fake = tmp_path / "stance-run"
    shutil.copytree(run, fake)
    meta_path = fake / layout.STORE_DIR / "meta.json"
    meta = json.loads(meta_path.read_text())
    meta["prompts"]["prompt_family"] = "stance"
    meta_path.write_text(json.dumps(meta))
    return fake


@pytest.fixture(scope="module")
def validity(toy_run, tmp_path_factory):
    run, _ = toy_run
    tmp = tmp_path_factory.mktemp("validity")
    out = tmp / "out"
    argv = ["validity", "--model", "toy", "--run", str(run), "--limit", "4", "--seeds", "12", "--steer-limit", "1"]
    assert main([*argv, "--stance-run", str(_stance_copy(run, tmp)), "--out", str(out)]) == 0
    return out, json.loads((out / layout.VALIDITY_JSON).read_text())


def test_the_toy_model_fails_the_transfer_test_in_every_band(validity):
    """No band of the toy reads a shared state: at most one implicit set passes there (its event texts
    share some of the SEV events' valence with the instruction words at the last layer, measured), and
    the first band reads the instruction word outright."""
    _, res = validity
    assert all(b["verdict"] != "emotion state" and len(b["supporting"]) <= 1 for b in res["bands"])
    assert res["bands"][0]["verdict"] == "instruction word"
    assert {tuple(b["layers"]) for b in res["bands"]} == {(0, 0), (1, 2), (3, 3)}
    stats = res["stats"]
    assert min(stats["within"]["value"]) > 0.9  # the explicit prompts' emotion is read at every layer
    for s in ("stance", "event", "story"):  # but a probe fitted on them reads no implicit set
        assert max(stats["forward"][s]["value"]) < 0.4
    assert set(stats["n"]) == {
        f"{s} {side}" for s in ("explicit", "stance", "event", "story") for side in ("dev", "final")
    }
    assert stats["n"]["explicit dev"] == 4 * 3 * 6


def test_the_steering_check_steers_with_every_set_and_its_controls(validity):
    out, res = validity
    arms = res["steering"]["arms"]
    assert set(arms) == {
        "no steering",
        *(f"direction: {s}" for s in ("explicit", "stance", "event", "story", "random")),
        *(f"circuit: {s}" for s in ("explicit", "explicit random", "stance", "stance random")),
    }
    assert all(a["n"] == 18 and a["interval"][0] <= a["accuracy"] <= a["interval"][1] for a in arms.values())
    # the toy's explicit direction steers; a random one of equal norm does not
    assert arms["direction: explicit"]["interval"][0] > arms["direction: random"]["accuracy"]
    assert res["steering"]["strengths_from"] == "the evaluation defaults"  # the fixture run was not evaluated
    md = (out / layout.VALIDITY_MD).read_text()
    assert "| direction: explicit |" in md and "instruction word" in md and res["rule"] in md


def test_each_sets_directions_record_their_prompt_family(validity):
    out, _ = validity
    for s in ("explicit", "stance", "event", "story"):
        d = Directions.load(out / f"{layout.VALIDITY_DIRECTIONS}_{s}")
        assert d.prompts["prompt_family"] == s and d.unit.shape[:3] == (2, 4, 6)
    assert Directions.load(out / f"{layout.VALIDITY_DIRECTIONS}_stance").prompts["implicit_split"] == "dev"


def test_a_stance_run_that_is_not_one_and_a_foreign_folder_are_refused(toy_run, tmp_path, capsys):
    run, _ = toy_run
    base = ["validity", "--model", "toy", "--run", str(run), "--limit", "2", "--steer-limit", "1"]
    assert main([*base, "--stance-run", str(run), "--out", str(tmp_path / "v")]) == 2
    assert "--stance-run" in capsys.readouterr().err and not (tmp_path / "v").exists()
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "keep.txt").write_text("mine")
    assert main([*base, "--out", str(tmp_path / "busy")]) == 2
    assert "keep.txt" in capsys.readouterr().err and (tmp_path / "busy" / "keep.txt").read_text() == "mine"
    assert main(["validity", "--model", "toy", "--run", str(run), "--steer-limit", "0", "--judge", "lexicon"]) == 2
    assert "--steer-limit 0" in capsys.readouterr().err


def test_the_run_report_shows_the_verdicts_and_the_steering_arms(validity, toy_run, tmp_path):
    from circuits.runs.report import gather_report, write_run_report
    from circuits.runs.validity import verdict_table

    out, res = validity
    run = tmp_path / "run"
    shutil.copytree(toy_run[0], run)
    assert gather_report(run)["validity"] is None  # absent until the check ran
    shutil.copytree(out, run / layout.VALIDITY_DIR)
    data = gather_report(run)["validity"]
    assert data["rows"] == verdict_table(res) and len(data["steering_rows"]) == len(res["steering"]["arms"])
    md = write_run_report(run, fmt="md").read_text(encoding="utf-8")
    section = md.split("## Emotion state or instruction word?")[1].split("\n## ")[0]
    for band, row in zip(res["bands"], data["rows"]):
        assert f"| {row[0]} |" in section and f"| {band['verdict']} |" in section
    assert "| direction: random |" in section and f"Rule: {res['rule']}" in section
    html = write_run_report(run).read_text(encoding="utf-8")
    assert "<section id='validity' class='present'>" in html and "id='table-validity-steering'" in html
