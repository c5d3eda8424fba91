"""The bad-input matrix: one case per cause of a silent acceptance or a traceback on odd input (issue 35,
items 4 and 5). Each runs ``circuits.cli.main`` and asserts exit status 2, one stderr line naming the
flag and what was expected, that nothing under the test folder was created or changed (checksums), and,
for the checks that need no model, that the model never loaded (the loaders fail the test if called)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import torch

from circuits import cli

NO_CUDA = not torch.cuda.is_available()


def _checksums(folder: Path) -> dict[str, str]:
    """Every path under ``folder`` (folders too) with the sha256 of its bytes ("dir" for a folder),
    but the empty writer-lock files of :mod:`circuits.core.ownership` (``.NAME.lock``, left by design)."""
    return {
        str(p.relative_to(folder)): "dir" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if not (p.name.startswith(".") and p.name.endswith(".lock") and p.stat().st_size == 0)
    }


def _refused(capsys, argv: list, *needles: str, loads: bool = False) -> str:
    """Run the CLI; assert exit 2 and one stderr line ``emocircuits: error: ...`` holding every needle:
    the only line, or (``loads``: the model loaded first, its progress bars are on stderr too) the last
    one, with no traceback. Returns the line."""
    status = cli.main([str(a) for a in argv])
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert status == 2, err
    assert "Traceback" not in err and (loads or len(lines) == 1), err
    assert lines[-1].startswith("emocircuits: error: "), err
    for needle in needles:
        assert needle in lines[-1], (needle, lines[-1])
    return lines[-1]


@pytest.fixture
def work(tmp_path, monkeypatch):
    """A test folder holding a run that looks finished (summary naming the toy model, an evaluation),
    a VA folder name, a text file and a folder; the model and LM loaders and toy training fail the test
    when called (every case here is refused before them)."""
    from circuits.core import model as model_mod
    from circuits.judges import learned
    from circuits.toy import train

    run = tmp_path / "run"
    (run / "circuits").mkdir(parents=True)
    (run / "summary.json").write_text(json.dumps({"model": {"name": "toy"}, "config": {}}))
    (run / "evaluation.json").write_text('{"methods": {}}\n')
    (tmp_path / "phrases.txt").write_text("I cannot\n")
    (tmp_path / "a_file").write_text("keep me")
    (tmp_path / "a_folder").mkdir()

    def fail(*args, **kwargs):
        raise AssertionError("loaded or trained before the flags were checked")

    monkeypatch.setattr(model_mod, "load_model", fail)
    monkeypatch.setattr(learned, "make_encoder", fail)
    monkeypatch.setattr(train, "train_toy", fail)
    monkeypatch.chdir(tmp_path)
    return tmp_path


RUN = ["--run", "run"]
GGUF = ["export-gguf", "--model", "toy", *RUN, "--out", "x.gguf"]
TRACE = ["trace", "--model", "toy", *RUN, "--out", "t.html"]
JUDGE_LM = ["--lm", str(Path(__file__).resolve().parents[1] / "circuits" / "toy" / "model")]

# (id = the cause, argv, needles of the one error line)
CASES = [
    # numbers checked in float32, the dtype of the model tensors they end in
    ("evaluate-strength-overflows-float32", ["evaluate", "--model", "toy", *RUN, "--circuit-lambda", "1e300"],
     ["--circuit-lambda", "float32", "1e+300"]),
    ("evaluate-sweep-strength-overflows-float32",
     ["evaluate", "--model", "toy", *RUN, "--direction-alphas", "1", "1e39"], ["--direction-alphas", "float32"]),
    ("dose-response-strength-overflows-float32", ["dose-response", "--model", "toy", *RUN, "--ev-alpha=-1e300"],
     ["--ev-alpha", "float32"]),
    ("trace-strength-overflows-float32",
     [*TRACE, "--prompt", "hi", "--method", "direction", "--emotion", "anger", "--strength", "1e300"],
     ["--strength", "float32"]),
    ("va-alphas-overflow-float32", ["va", "--model", "toy", "--out", "va", "--alphas", "1", "1e300"],
     ["--alphas", "float32"]),
    ("export-gguf-strength-overflows-float32",
     [*GGUF, "--source", "direction", "--emotion", "anger", "--strength", "1e300"], ["--strength", "float32"]),
    ("discover-influence-alphas-overflow-float32",
     ["discover", "--model", "toy", "--out", "out", "--influence-alphas=-1e308"], ["--influence-alphas", "float32"]),
    # counts
    ("threads-negative", ["evaluate", "--model", "toy", *RUN, "--threads", "-3"], ["--threads", ">= 1", "-3"]),
    ("threads-zero-prompts", ["prompts", "--model", "toy", "--threads", "0"], ["--threads", ">= 1"]),
    ("toy-train-threads-negative", ["toy", "train", "--out", "toy_out", "--threads", "-3"], ["--threads", ">= 1"]),
    ("toy-train-epochs-zero", ["toy", "train", "--out", "toy_out", "--epochs", "0"], ["--epochs", ">= 1"]),
    ("toy-train-limit-zero", ["toy", "train", "--out", "toy_out", "--limit", "0"], ["--limit", ">= 1"]),
    ("toy-evaluate-limit-zero", ["toy", "evaluate", "--limit", "0"], ["--limit", ">= 1"]),
    ("toy-evaluate-limit-negative", ["toy", "evaluate", "--limit", "-2"], ["--limit", ">= 1"]),
    ("toy-evaluate-max-new-tokens-zero", ["toy", "evaluate", "--max-new-tokens", "0"], ["--max-new-tokens", ">= 1"]),
    ("toy-evaluate-max-new-tokens-negative", ["toy", "evaluate", "--max-new-tokens", "-5"], ["--max-new-tokens"]),
    ("prompts-max-new-tokens-zero", ["prompts", "--model", "toy", "--max-new-tokens", "0"], ["--max-new-tokens"]),
    ("trace-max-new-tokens-negative", [*TRACE, "--prompt", "hi", "--max-new-tokens", "-1"], ["--max-new-tokens"]),
    # the learned judge's training options
    ("judge-train-l2-nan", ["judge", "train", "--features", "style", "--l2", "nan", "--out", "j"], ["--l2", "finite"]),
    ("judge-cv-l2-negative", ["judge", "cv", "--features", "style", "--l2", "-1"], ["--l2", ">= 0"]),
    ("judge-cv-folds-zero", ["judge", "cv", "--features", "style", "--folds", "0"], ["--folds", ">= 2"]),
    ("judge-train-folds-beyond-rows", ["judge", "train", "--features", "style", "--folds", "100000", "--out", "j"],
     ["--folds", "rows"]),
    ("judge-cv-layer-beyond-the-lm", ["judge", "cv", "--features", "lm", *JUDGE_LM, "--layer", "999"],
     ["--layer", "<= 4", "999"]),
    ("judge-train-lm-missing-folder", ["judge", "train", "--lm", "no_such_lm", "--out", "j"],
     ["--lm no_such_lm", "no such model"]),
    ("judge-train-out-is-a-file", ["judge", "train", "--features", "style", "--out", "a_file"], ["--out", "a_file"]),
    ("judge-train-several-heads", ["judge", "train", "--features", "style", "lm", "--out", "j"],
     ["--features", "one value"]),
    # devices: one shared check
    ("judge-label-device-cuda", ["judge", "label", "a_file", "--device", "cuda" if NO_CUDA else "cuda:99"],
     ["--device", "cuda"]),
    ("judge-eval-device-typo", ["judge", "eval", "--device", "gpu0"], ["--device", "gpu0"]),
    ("judge-cv-device-typo", ["judge", "cv", "--features", "style", "--device", "gpu0"], ["--device", "gpu0"]),
    # flags the command would ignore
    ("export-gguf-axis-without-va",
     [*GGUF, "--source", "direction", "--emotion", "anger", "--strength", "1", "--axis", "arousal"],
     ["--axis", "would ignore"]),
    ("export-gguf-emotion-with-va", [*GGUF, "--source", "va", "--va", "va", "--emotion", "anger", "--strength", "1"],
     ["--emotion", "would ignore"]),
    ("export-gguf-layers-not-direction",
     [*GGUF, "--source", "circuit", "--emotion", "anger", "--strength", "1", "--layers", "2"],
     ["--layers", "would ignore"]),
    ("export-gguf-va-dir-not-va", [*GGUF, "--source", "circuit", "--emotion", "anger", "--strength", "1", "--va", "v"],
     ["--va", "would ignore"]),
    ("export-gguf-va-needs-va-dir", [*GGUF, "--source", "va", "--strength", "1"], ["--va", "needs the VA run"]),
    ("export-gguf-gguf-without-check",
     [*GGUF, "--source", "circuit", "--emotion", "anger", "--strength", "1", "--gguf", "m.gguf"],
     ["--gguf", "--check"]),
    ("export-gguf-judge-without-check",
     [*GGUF, "--source", "circuit", "--emotion", "anger", "--strength", "1", "--judge", "lexicon"],
     ["--judge", "--check"]),
    ("evaluate-sweep-of-a-method-not-run",
     ["evaluate", "--model", "toy", *RUN, "--methods", "prompting", "neutral", "--circuit-lambdas", "1", "2"],
     ["--circuit-lambdas", "--methods"]),
    ("evaluate-alpha-of-a-method-not-run",
     ["evaluate", "--model", "toy", *RUN, "--methods", "circuit", "--direction-alpha", "4"],
     ["--direction-alpha", "--methods"]),
    ("evaluate-direction-layers-without-direction",
     ["evaluate", "--model", "toy", *RUN, "--methods", "neutral", "--direction-layers", "1"],
     ["--direction-layers", "--methods"]),
    ("evaluate-sweep-limit-without-a-sweep", ["evaluate", "--model", "toy", *RUN, "--sweep-limit", "5"],
     ["--sweep-limit", "strength sweep"]),
    ("dose-response-grid-of-a-method-not-run",
     ["dose-response", "--model", "toy", *RUN, "--methods", "circuit", "--ev-alphas", "1", "2"],
     ["--ev-alphas", "--methods"]),
    ("faithfulness-judge-without-judged-rows",
     ["faithfulness", "--model", "toy", *RUN, "--judge-rows", "0", "--judge", "lexicon"], ["--judge", "ignored"]),
    ("faithfulness-sev-with-train-split",
     ["faithfulness", "--model", "toy", *RUN, "--split", "train", "--sev", "a_file"], ["--sev", "ignored"]),
    ("va-ratings-with-self-report",
     ["va", "--model", "toy", "--out", "va", "--self-report", "--ratings", "a_file"], ["--ratings", "--self-report"]),
    ("trace-max-new-tokens-with-text", [*TRACE, "--text", "I am furious.", "--max-new-tokens", "9"],
     ["--max-new-tokens", "--text"]),
    ("trace-prompting-with-text", [*TRACE, "--text", "I am furious.", "--method", "prompting", "--emotion", "anger"],
     ["--method prompting", "--text"]),
    ("trace-strength-without-steering", [*TRACE, "--prompt", "hi", "--strength", "2"], ["--strength", "ignore"]),
    ("va-refusal-phrases-without-refusal",
     ["va", "--model", "toy", "--out", "va", "--refusal-phrases", "phrases.txt"], ["--refusal-phrases", "--refusal"]),
    # placeholders
    ("neutral-system-with-emotion", ["discover", "--model", "toy", "--out", "out", "--neutral-system", "{emotion}"],
     ["--neutral-system", "{emotion}"]),
    ("emotion-system-without-emotion",
     ["discover", "--model", "toy", "--out", "out", "--emotion-system", "Reply."], ["--emotion-system", "{emotion}"]),
    ("user-instruction-unknown-field",
     ["discover", "--model", "toy", "--out", "out", "--user-instruction", "Be {emotion}, {mood}."],
     ["--user-instruction", "{mood}"]),
    ("prompts-wording-without-emotion", ["prompts", "--model", "toy", "--wordings", "Reply kindly."],
     ["--wordings", "{emotion}"]),
    ("prompts-wording-unknown-field", ["prompts", "--model", "toy", "--wordings", "Be {emotion} {x}"],
     ["--wordings", "{x}"]),
    # output paths
    ("prompts-out-and-replies-same-file", ["prompts", "--model", "toy", "--out", "f.json", "--replies", "f.json"],
     ["--replies", "--out"]),
    ("prompts-out-is-a-folder", ["prompts", "--model", "toy", "--out", "a_folder"], ["--out", "a_folder", "folder"]),
    ("trace-out-in-a-missing-folder", ["trace", "--model", "toy", *RUN, "--prompt", "hi", "--out", "nope/t.html"],
     ["--out", "does not exist"]),
    ("toy-evaluate-json-is-a-folder", ["toy", "evaluate", "--json", "a_folder"], ["--json", "folder"]),
    # texts
    ("trace-empty-text", [*TRACE, "--text", ""], ["--text", "non-empty"]),
    ("trace-blank-prompt", [*TRACE, "--prompt", "   "], ["--prompt", "non-empty"]),
    ("trace-neither-prompt-nor-text", TRACE, ["--prompt", "--text"]),
]  # fmt: skip


@pytest.mark.parametrize("argv, needles", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_refused_before_anything_loads_or_is_written(capsys, work, argv, needles):
    before = _checksums(work)
    _refused(capsys, argv, *needles)
    assert _checksums(work) == before


def test_sev_validate_exits_2_on_a_bad_file(capsys, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"theme": "t"}\n')
    assert cli.main(["sev", "validate", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"INVALID {bad}") and "Traceback" not in err
    assert cli.main(["sev", "validate", str(tmp_path / "missing.jsonl")]) == 2
    assert "missing.jsonl" in capsys.readouterr().err


# ------------------------------------------------------------------ checks right after the model loads
@pytest.fixture(scope="module")
def other_model_dir(tmp_path_factory):
    """A tiny random Qwen2 folder: a model other than the toy one."""
    from circuits.toy.tiny import build_tiny_model

    return build_tiny_model("qwen2", tmp_path_factory.mktemp("other") / "qwen2", seed=1)


@pytest.fixture(scope="module")
def toy_fingerprint():
    from circuits.core.model import load_model

    return load_model("toy").fingerprint


@pytest.fixture
def toy_run(tmp_path, toy_fingerprint):
    """A run folder whose summary records the toy model (name as ``--model toy`` records it, fingerprint)."""
    from circuits.core.resources import data_dir

    run = tmp_path / "run"
    (run / "circuits").mkdir(parents=True)
    summary = {"model": {"name": str(data_dir("toy_model")), "fingerprint": toy_fingerprint}, "config": {}}
    (run / "summary.json").write_text(json.dumps(summary))
    return run


@pytest.mark.parametrize(
    "command",
    [
        ["evaluate", "--methods", "prompting", "neutral"],
        ["dose-response", "--methods", "prompting"],
        ["trace", "--prompt", "hi", "--out", "OUT/t.html"],
        ["export-graph"],
        ["nulls"],
    ],
    ids=lambda c: c[0],
)
def test_another_model_than_the_runs_is_refused_for_every_method(capsys, toy_run, other_model_dir, command):
    command = [a.replace("OUT", str(toy_run.parent)) for a in command]
    before = _checksums(toy_run.parent)
    _refused(
        capsys,
        [command[0], "--model", other_model_dir, "--run", toy_run, *command[1:]],
        "--model",
        "fingerprint",
        loads=True,
    )
    assert _checksums(toy_run.parent) == before


def test_evaluate_without_model_takes_the_toy_models_lexicon_judge(capsys, toy_run, monkeypatch):
    """``evaluate --run TOY_RUN`` takes the run's model and that model's documented default judge."""
    from circuits.core import model as model_mod
    from circuits.judges import base

    made = []

    def stop(name, **kwargs):
        raise model_mod.InputError("stop before loading")

    monkeypatch.setattr(base, "make_judge", lambda spec, **kw: made.append(spec))
    monkeypatch.setattr(model_mod, "load_model", stop)
    _refused(capsys, ["evaluate", "--run", toy_run], "stop before loading")
    summary = json.loads((toy_run / "summary.json").read_text())
    summary["model"]["name"] = "/elsewhere/circuits/toy/model"  # a run made in another checkout
    (toy_run / "summary.json").write_text(json.dumps(summary))
    _refused(capsys, ["evaluate", "--run", toy_run], "stop before loading")
    summary["model"]["name"] = "some/hub-model"
    (toy_run / "summary.json").write_text(json.dumps(summary))
    _refused(capsys, ["evaluate", "--run", toy_run], "stop before loading")
    assert made == ["lexicon", "lexicon", base.DEFAULT_JUDGE] and base.DEFAULT_JUDGE != "lexicon"


@pytest.mark.parametrize(
    "layers, needles",
    [(["9"], ["--layers", "<= 3", "9"]), (["0"], ["--layers", ">= 1"])],
    ids=["beyond-the-model", "block-0"],
)
def test_export_gguf_layers_are_checked_against_the_model_before_writing(capsys, toy_run, layers, needles):
    out = toy_run.parent / "x.gguf"
    before = _checksums(toy_run.parent)
    argv = ["export-gguf", "--model", "toy", "--run", toy_run, "--source", "direction", "--emotion", "anger"]
    _refused(capsys, [*argv, "--strength", "1", "--layers", *layers, "--out", out], *needles, loads=True)
    assert _checksums(toy_run.parent) == before


def test_discover_sweep_ks_beyond_the_mlp_width_is_refused_before_writing(capsys, tmp_path):
    """``--sweep-ks 100000`` (once an empty sweeps.csv with no note) is refused right after the toy model
    loads, naming the flag and the bound; the output folder is never made."""
    out = tmp_path / "run"
    line = _refused(
        capsys, ["discover", "--model", "toy", "--limit", "2", "--sweep-ks", "1", "100000", "--out", out], loads=True
    )
    assert "DiscoverConfig.sweep_ks (--sweep-ks): expected a value <= " in line and "MLP width" in line
    assert not out.exists()


# ------------------------------------------------------------------------------------- the Python API
def test_check_at_most_bounds_sweep_ks_by_the_model(capsys):
    """What ``discover`` calls right after the model loads: ``--sweep-ks`` above the MLP width is refused."""
    from circuits.core.config import ConfigError, check_at_most
    from circuits.runs.discover import DiscoverConfig

    check_at_most(DiscoverConfig(sweep_ks=(1, 384)), "sweep_ks", 384, "the model's MLP width")
    with pytest.raises(ConfigError, match=r"DiscoverConfig.sweep_ks \(--sweep-ks\): expected a value <= 384 .*100000"):
        check_at_most(DiscoverConfig(sweep_ks=(1, 100000)), "sweep_ks", 384, "the model's MLP width")


@pytest.mark.parametrize("value", [1e300, -1e39, float("nan"), float("inf")])
def test_config_floats_must_be_finite_in_float32(value):
    from circuits.core.config import ConfigError
    from circuits.steer.metrics import EvalConfig

    with pytest.raises(ConfigError, match=r"EvalConfig.ev_alpha \(--ev-alpha\): expected a finite"):
        EvalConfig(ev_alpha=value)
    assert EvalConfig(ev_alpha=3.4e38).ev_alpha == 3.4e38  # the largest float32 range is still accepted


def test_judge_training_api_refuses_non_finite_l2_before_writing(tmp_path):
    from circuits.core.artifacts import InputError
    from circuits.core.resources import data_path
    from circuits.judges.calibrate import read_labelled
    from circuits.judges.training import cross_validate, train_judge

    rows = read_labelled(data_path("judge_replies"), split="dev")
    with pytest.raises(InputError, match=r"l2 \(--l2\): expected a finite float, got nan"):
        train_judge(rows, tmp_path / "j", kind="style", l2=float("nan"))
    with pytest.raises(InputError, match=r"folds \(--folds\): expected a value >= 2, got 1"):
        cross_validate(rows, ["style"], [0.1], k=1, progress=False)
    assert not (tmp_path / "j").exists()


def test_toy_train_config_refuses_zero_epochs_and_limits():
    from circuits.core.config import ConfigError
    from circuits.toy.train import ToyTrainConfig

    with pytest.raises(ConfigError, match=r"ToyTrainConfig.epochs \(--epochs\): expected a value >= 1, got 0"):
        ToyTrainConfig(epochs=0)
    with pytest.raises(ConfigError, match=r"ToyTrainConfig.limit \(--limit\)"):
        ToyTrainConfig(limit=0)
    with pytest.raises(ConfigError, match=r"ToyTrainConfig.open_neutral .*<= 1"):
        ToyTrainConfig(open_neutral=1.5)


def test_a_control_vector_that_overflows_is_refused_before_its_file_is_written():
    """A strength finite in float32 can still overflow once multiplied by the residual scale: the
    ControlVector itself refuses non-finite directions when it is built, before ``export-gguf`` writes it."""
    from circuits.interop.controlvector import ControlVector, ControlVectorError

    ControlVector(vectors={1: torch.ones(4) * 3e38, 2: torch.ones(4)}, model_hint="toy")
    with pytest.raises(ControlVectorError, match=r"layer\(s\) \[2\] hold NaN or infinite values \(in float32\)"):
        ControlVector(vectors={1: torch.ones(4), 2: torch.ones(4) * 3e38 * 10.0}, model_hint="toy")
