"""Per-token traces on the toy run: the traced reply is the one generate() makes (steered or not), the
scores equal cosines from a teacher-forced pass, and the page needs no network."""

from __future__ import annotations

import json

import pytest
import torch

from circuits.core.generate import GenerationSettings, generate
from circuits.core.hooks import Read, run_forward
from circuits.discovery.directions import Directions
from circuits.steer.methods import direction_steering
from circuits.steer.token_trace import trace_generation


@pytest.fixture(scope="module")
def setup(toy, toy_run):
    dirs = Directions.load(toy_run[0] / "directions")
    prompt = toy.chat_ids("You are a helpful assistant.", "My neighbour borrowed my ladder and broke it.")
    return toy, dirs, prompt


def test_the_traced_reply_is_the_generated_one_and_scores_are_cosines(setup):
    model, dirs, prompt = setup
    tr = trace_generation(model, prompt, dirs, max_new_tokens=12)
    want = generate(model, [prompt], GenerationSettings(max_new_tokens=12, backend="bridge"), progress=False)[0]
    assert tr["reply"] == want
    ids = model.tokenizer(tr["reply"], add_special_tokens=False)["input_ids"]
    full = torch.tensor([prompt + ids])
    reads = [Read("resid_post", L, positions="all") for L in range(model.arch.n_layers)]
    got = run_forward(model, full, torch.ones_like(full), reads=reads)
    scores = torch.tensor(tr["scores"])  # [L, T, E]
    assert scores.shape == (model.arch.n_layers, len(tr["tokens"]), len(dirs.emotions))
    n = full.shape[1]
    for L, r in enumerate(reads):
        h = got[r][0]  # [pos, d]
        cos = (h @ dirs.unit[1, L].T) / h.norm(dim=-1, keepdim=True)
        torch.testing.assert_close(scores[L, :n], cos, atol=1e-4, rtol=1e-4)


def test_steered_traces_follow_the_steered_generation(setup):
    model, dirs, prompt = setup
    ivs = direction_steering(dirs, "anger", [1, 2], 6.0, model)
    tr = trace_generation(model, prompt, dirs, ivs, max_new_tokens=12)
    plain = trace_generation(model, prompt, dirs, max_new_tokens=12)
    want = generate(
        model, [prompt], GenerationSettings(max_new_tokens=12, backend="bridge"), interventions=ivs, progress=False
    )[0]
    assert tr["reply"] == want
    e = dirs.emotions.index("anger")
    L = 2
    # the steered layer's states point further along anger at the last prompt token
    assert tr["scores"][L][len(prompt) - 1][e] > plain["scores"][L][len(prompt) - 1][e]


def test_trace_command_writes_a_self_contained_page(toy_run, tmp_path, capsys):
    from circuits.cli import main

    out = tmp_path / "trace.html"
    assert (
        main(
            [
                "trace",
                "--model",
                "toy",
                "--run",
                str(toy_run[0]),
                "--prompt",
                "The cake fell on the floor.",
                "--method",
                "circuit",
                "--emotion",
                "sadness",
                "--positions",
                "last",
                "--max-new-tokens",
                "8",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    page = out.read_text()
    assert "<script src" not in page and "http" not in page.split("<script>")[1]
    data = json.loads(out.with_suffix(".json").read_text())
    assert data["method"] == "circuit" and data["emotion"] == "sadness"
    assert len(data["scores"][0]) == len(data["tokens"])
    text_out = tmp_path / "text.html"
    assert (
        main(
            [
                "trace",
                "--run",
                str(toy_run[0]),
                "--text",
                "I am furious.",
                "--out",  # --model: the run's
                str(text_out),
            ]
        )
        == 0
    )
    assert json.loads(text_out.with_suffix(".json").read_text())["n_prompt"] == 0
    assert main(["trace", "--model", "toy", "--run", str(toy_run[0]), "--out", str(tmp_path / "x.html")]) == 2
