"""Evaluation metrics (distinct-n, perplexity) and the evaluate_methods schema."""

from __future__ import annotations

import math

import pytest
import torch

from circuits.core.sev import DEFAULT_TEST, load_sev
from circuits.steer.methods import circuit_modulation, direction_steering
from circuits.steer.metrics import EvalConfig, distinct_n, evaluate_methods, reply_perplexity


def test_distinct_and_perplexity(qwen_tiny):
    assert distinct_n(["a b a b", "a b"]) == pytest.approx(2 / 4)
    assert distinct_n(["one"]) == 0.0
    m = qwen_tiny
    prompt = m.chat_ids("Be brief.", "Hello.")
    reply = "I took the bus"
    ppl = reply_perplexity(m, [prompt, m.chat_ids("x", "a much longer user message here")], [reply, reply])
    ids = prompt + m.tokenizer(reply, add_special_tokens=False)["input_ids"] + [m.tokenizer.eos_token_id]
    with torch.no_grad():
        logp = torch.log_softmax(m.hf_model(input_ids=torch.tensor([ids])).logits[0].float(), -1)
    n = len(ids) - len(prompt)
    manual = math.exp(-logp[len(prompt) - 1 : -1].gather(-1, torch.tensor(ids[len(prompt) :])[:, None]).mean().item())
    assert ppl[0] == pytest.approx(manual, rel=1e-4)


def test_evaluate_methods_schema(qwen_tiny, tiny_run):
    store, dirs, circuit = tiny_run
    cfg = EvalConfig(
        methods=("prompting", "neutral", "direction", "circuit"),
        emotions=("anger",),
        limit=1,
        max_new_tokens=5,
        min_new_tokens=2,
    )
    ivs = {
        "direction": lambda e: direction_steering(dirs, e, [1], 4.0),
        "circuit": lambda e: circuit_modulation(circuit, qwen_tiny),
    }
    res = evaluate_methods(qwen_tiny, load_sev(DEFAULT_TEST), ivs, cfg, progress=False)
    assert set(res["methods"]) == set(cfg.methods)
    for m in res["methods"].values():
        assert m["n"] == 3 and 0 <= m["accuracy"] <= 1 and set(m["per_valence"]) == {"positive", "neutral", "negative"}
        assert m["perplexity"] > 1 and set(m["per_emotion"]) == {"anger"}


def test_method_table_columns_stay_apart_for_huge_perplexities():
    from circuits.steer.metrics import method_table

    per = {"anger": 0.5, "fear": 1.0}
    result = {
        "methods": {
            "prompting": {"accuracy": 0.75, "per_emotion": per, "perplexity": 1.66, "distinct_2": 0.2},
            "direction": {"accuracy": 0.1, "per_emotion": per, "perplexity": 614200.4, "distinct_2": 0.37},
            "circuit": {"accuracy": 0.0, "per_emotion": per, "perplexity": 3.2e12, "distinct_2": 0.5},
        }
    }
    lines = method_table(result).splitlines()
    assert len({len(line) for line in lines}) == 1  # every row as wide as the header
    for line, ppl in zip(lines[1:], ["1.66", "614,200", "3.20e+12"]):
        cols = line.split()
        assert cols[-2] == ppl and cols[-1] in ("0.20", "0.37", "0.50")
