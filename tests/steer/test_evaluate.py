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


def _slow_reference(model, test, ivs, cfg, settings):
    """What evaluate_methods computed before its shortcuts: per method, the replies of ``generate`` and
    one full teacher-forced pass per reply under the target emotion's prompt; per method, the replies
    and their perplexities."""
    from circuits.core.generate import GenerationSettings, generate

    gen = GenerationSettings(
        max_new_tokens=cfg.max_new_tokens, batch_size=cfg.batch_size, repetition_penalty=cfg.repetition_penalty
    )
    rows = [it for e in cfg.emotions for it in test.subset(cfg.limit).items([e])]
    out = {}
    for method in cfg.methods:
        prompts = [
            model.chat_ids(*settings.chat(it.emotion if method == "prompting" else None, it.user_text)) for it in rows
        ]
        edits = [ivs[method](it.emotion) if method in ivs else [] for it in rows]
        replies = generate(
            model,
            prompts,
            gen,
            interventions=edits,
            progress=False,
            min_new_tokens=cfg.min_new_tokens,
            no_repeat_ngram_size=cfg.no_repeat_ngram_size,
        )
        ppl_prompts = [model.chat_ids(*settings.chat(it.emotion, it.user_text)) for it in rows]
        out[method] = (replies, reply_perplexity(model, ppl_prompts, replies, shared_prefix=False))
    return out


@pytest.mark.parametrize("name", ["toy", "qwen2", "llama"])
def test_evaluate_methods_equals_the_slow_two_pass_computation(name, tiny_models, monkeypatch):
    """The shortcuts (perplexity of prompting replies from their generation pass, every other reply
    scored on its prompt cached once) change no number: the same replies, in the same order, and each
    method's perplexity equal to the slow computation's within 1e-4 relative."""
    from circuits.core.hooks import Intervention
    from circuits.core.model import load_model
    from circuits.core.sev import PromptSettings

    model = load_model("toy") if name == "toy" else tiny_models[name]
    g = torch.Generator().manual_seed(3)
    vec = torch.randn(model.arch.d_model, generator=g)
    ivs = {"direction": lambda e: [Intervention("resid_post", 0, "add", vector=vec, factor=2.0, positions="all")]}
    cfg = EvalConfig(
        methods=("prompting", "neutral", "direction"),
        emotions=("anger", "happiness"),
        limit=2,
        max_new_tokens=10,
        min_new_tokens=2,
        batch_size=5,
    )
    settings = PromptSettings()
    record: list = []
    test = load_sev(DEFAULT_TEST)
    import circuits.steer.metrics as metrics

    scored: list[int] = []
    real = metrics.reply_perplexity
    monkeypatch.setattr(metrics, "reply_perplexity", lambda m, p, r, **kw: scored.append(len(r)) or real(m, p, r, **kw))
    res = evaluate_methods(model, test, ivs, cfg, settings=settings, progress=False, record=record)
    n = res["methods"]["prompting"]["n"]
    # one shared scoring call; the toy model's prompting replies tokenize back, so they skip it; the
    # random tiny models' replies do not (decoding merges tokens), so every reply is scored the slow way
    assert scored == [2 * n if name == "toy" else 3 * n]
    slow = _slow_reference(model, test, ivs, cfg, settings)
    for method, (replies, ppl) in slow.items():
        assert [r["text"] for r in record if r["method"] == method] == replies
        want = math.exp(sum(math.log(p) for p in ppl) / len(ppl))
        assert res["methods"][method]["perplexity"] == pytest.approx(want, rel=1e-4)
        assert res["methods"][method]["distinct_2"] == distinct_n(replies)


def test_generation_perplexity_equals_reply_perplexity_where_it_applies(tiny_models):
    """Per reply: the perplexity from the generation pass equals the slow one whenever it is given, it is
    given for most replies of the toy model, and it is refused where the text does not tokenize back to
    the generated tokens."""
    from circuits.core.generate import GenerationSettings, ScoredReply, generate_scored
    from circuits.core.model import load_model
    from circuits.core.sev import PromptSettings
    from circuits.steer.metrics import generation_perplexity

    model = load_model("toy")
    prompts = [
        model.chat_ids(*PromptSettings().chat(e, u))
        for e, u in [("anger", "The bus was late."), ("happiness", "I got the job.")]
    ]
    out = generate_scored(
        model, prompts, GenerationSettings(max_new_tokens=12, repetition_penalty=1.1), min_new_tokens=2, progress=False
    )
    fast = [generation_perplexity(model, r) for r in out]
    slow = reply_perplexity(model, prompts, [r.text for r in out], shared_prefix=False)
    assert all(f is not None for f in fast)
    for f, s in zip(fast, slow):
        assert f == pytest.approx(s, rel=1e-4)
    r = out[0]
    assert (
        generation_perplexity(model, ScoredReply(r.text + " extra words", r.tokens, r.logprobs, r.end_logprob)) is None
    )
    assert r.tokens[-1] != model.tokenizer.eos_token_id  # cut at 12 tokens: its end-of-turn score came from
    assert generation_perplexity(model, ScoredReply(r.text, r.tokens, r.logprobs, None)) is None  # the extra step
