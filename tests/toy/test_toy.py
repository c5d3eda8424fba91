"""The toy model: corpus, tokenizer, a seconds-long training run, and the shipped model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from circuits.core.emotions import EMOTIONS, NEUTRAL
from circuits.core.sev import DEFAULT_TEST, load_sev
from circuits.toy import TOY_MODEL_DIR
from circuits.toy import corpus as corpus_mod
from circuits.toy.corpus import MIN_TEMPLATES, build_corpus, second_person, usable_openers, usable_templates
from circuits.toy.tokenizer import build_tokenizer
from circuits.toy.train import ToyTrainConfig, encode_chat, train_toy

SENTENCES = Path(__file__).parents[1] / "data" / "judge_sentences.jsonl"
ARBITRARY = [
    "Plain English, with punctuation: commas; colons! And 'quotes'.",
    "  leading and trailing spaces  \n\ttabs and\r\nwindows newlines ",
    "Ünïcödé — em dashes, “curly quotes”, 日本語のテキスト, emoji 🎉🙂, math ∑x² ≤ ∞",
    "def f(x):\n    return {'a': [1, 2.5e-3]}  # code",
    "<|im_start|> is special but <im_start> is not",
]


@pytest.mark.parametrize(
    "event, expected",
    [
        ("My manager said I was right.", "your manager said you were right"),
        ("I am late for my train.", "you are late for your train"),
        ("The bus left without us.", "the bus left without you"),
        ("Anna told me she was moving to Paris.", "anna told you she was moving to Paris"),
    ],
)
def test_second_person(event, expected):
    assert second_person(event) == expected


def test_templates_enough_per_label():
    kept = usable_templates()
    assert set(kept) == {*EMOTIONS, NEUTRAL}
    assert all(len(set(v)) >= MIN_TEMPLATES for v in kept.values())


def test_corpus_uses_train_only_and_not_the_judge_sentences():
    train = load_sev(limit=16)
    corpus = build_corpus(train, replies_per_prompt=2, seed=3)
    assert len(corpus) == 16 * 3 * 7 * 2
    assert {c.label for c in corpus} == {*EMOTIONS, NEUTRAL}
    d = ToyTrainConfig()  # the shipped model's corpus settings
    full = build_corpus(
        load_sev(),
        replies_per_prompt=d.replies_per_prompt,
        seed=d.seed,
        splice_prob=d.splice_prob,
        open_neutral=d.open_neutral,
        openers=d.openers,
    )
    text = "\n".join(t for c in full for t in (c.system, c.user, c.reply)).lower()
    test = load_sev(DEFAULT_TEST)
    assert not [s.scenario for s in test.scenarios if s.scenario.lower() in text]
    sentences = [json.loads(line)["text"] for line in SENTENCES.read_text().splitlines() if line.strip()]
    assert len(sentences) >= 60
    assert not [s for s in sentences if s.lower().rstrip(".!?") in text]


def test_emotional_replies_open_with_their_emotions_opener():
    openers = usable_openers()
    assert set(openers) == set(EMOTIONS) and all(openers.values())
    corpus = build_corpus(load_sev(limit=8), replies_per_prompt=2, seed=0, open_neutral=0.3)
    for c in corpus:
        starts = [o for label, os_ in openers.items() for o in os_ if c.reply.startswith(o + " ")]
        if c.label == NEUTRAL:
            assert not starts, c.reply
        else:
            assert starts and all(o in openers[c.label] for o in starts), (c.label, c.reply)
    plain = build_corpus(load_sev(limit=8), replies_per_prompt=2, seed=0, openers=False)
    assert not [c for c in plain for os_ in openers.values() for o in os_ if c.reply.startswith(o + " ")]


def test_open_neutral_share_of_emotional_replies_under_the_neutral_prompt():
    from circuits.core.sev import PromptSettings

    neutral_system = PromptSettings().system_for(None)
    for share in (0.0, 0.3, 1.0):
        corpus = build_corpus(load_sev(limit=40), replies_per_prompt=3, seed=0, open_neutral=share)
        under_neutral = [c for c in corpus if c.system == neutral_system]
        emotional = sum(c.label != NEUTRAL for c in under_neutral) / len(under_neutral)
        assert len(under_neutral) == 40 * 3 * 3
        assert abs(emotional - share) < 0.06, (share, emotional)
        # emotion prompts always get a reply in their emotion
        assert all(c.label in c.system for c in corpus if c.system != neutral_system)
    with pytest.raises(ValueError, match="open_neutral"):
        build_corpus(load_sev(limit=1), open_neutral=1.5)


def test_openers_must_commit_to_one_label(monkeypatch):
    clash = dict(corpus_mod.EMOTION_OPENERS, anger=("Outrageous!", "Noted, outrageous!"))
    monkeypatch.setattr(corpus_mod, "EMOTION_OPENERS", clash)
    with pytest.raises(ValueError, match="starts like a 'neutral' reply"):
        usable_openers()


def test_corpus_is_seeded():
    train = load_sev(limit=4)
    assert build_corpus(train, seed=1) == build_corpus(train, seed=1)
    assert build_corpus(train, seed=1) != build_corpus(train, seed=2)


@pytest.fixture(scope="module")
def shipped_tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(TOY_MODEL_DIR)


@pytest.mark.parametrize("text", ARBITRARY)
def test_tokenizer_round_trips_arbitrary_text(shipped_tokenizer, text):
    ids = shipped_tokenizer(text, add_special_tokens=False)["input_ids"]
    assert shipped_tokenizer.decode(ids) == text


def test_fresh_tokenizer_round_trips_and_has_chat_template():
    tok = build_tokenizer(["a small corpus of words"] * 3, vocab_size=300)
    for text in ARBITRARY[:4]:
        assert tok.decode(tok(text, add_special_tokens=False)["input_ids"]) == text
    prompt = tok.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True)
    assert prompt == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"


TINY = dict(
    limit=2,
    n_layers=1,
    d_model=32,
    n_heads=4,
    n_kv_heads=2,
    d_mlp=64,
    vocab_size=400,
    replies_per_prompt=2,
    epochs=3,
    batch_size=8,
    lr=1e-2,
    warmup_steps=2,
)


def test_tiny_training_lowers_loss_is_seeded_and_loads(tmp_path):
    from circuits.core.model import load_model

    torch.set_num_threads(1)
    cfg = ToyTrainConfig(**TINY)
    log = train_toy(cfg, tmp_path / "a", progress=False)
    first, last = log["losses"][:3], log["losses"][-3:]
    assert sum(last) / 3 < sum(first) / 3 - 1.0, (first, last)
    log_b = train_toy(cfg, tmp_path / "b", progress=False)
    assert log_b["losses"] == log["losses"]
    assert (tmp_path / "a" / "model.safetensors").read_bytes() == (tmp_path / "b" / "model.safetensors").read_bytes()
    assert not (tmp_path / "a.tmp").exists()
    model = load_model(tmp_path / "a")
    assert model.arch.architecture == "Qwen2ForCausalLM" and model.arch.n_kv_heads == 2
    # The training prompt is exactly the prompt the workbench builds.
    chat = build_corpus(load_sev(limit=2), replies_per_prompt=1)[0]
    ids, labels = encode_chat(model.tokenizer, chat, 512)
    n_prompt = sum(1 for x in labels if x == -100)
    assert ids[:n_prompt] == model.chat_ids(chat.system, chat.user)
    assert ids[-1] == model.tokenizer.eos_token_id


def test_shipped_model_shape_and_size():
    files = {p.name: p.stat().st_size for p in TOY_MODEL_DIR.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "train_log.json"} <= set(files)
    assert sum(files.values()) <= 25 * 2**20
    cfg = json.loads((TOY_MODEL_DIR / "config.json").read_text())
    assert cfg["architectures"] == ["Qwen2ForCausalLM"]
    assert cfg["num_attention_heads"] == 8 and cfg["num_key_value_heads"] in (2, 4)
    log = json.loads((TOY_MODEL_DIR / "train_log.json").read_text())
    assert log["train_sha256"] == load_sev().sha256  # trained on the shipped train split


def test_shipped_model_expresses_prompted_emotion_on_held_out_items():
    """A quick slice of `emocircuits toy evaluate` (the README reports the full table)."""
    from circuits.core.model import load_model
    from circuits.toy.accuracy import evaluate_toy

    model = load_model("toy")
    result = evaluate_toy(model, load_sev(DEFAULT_TEST, limit=8), progress=False)
    for label, r in result["per_label"].items():
        assert r["n"] == 24
        assert r["accuracy"] >= (0.95 if label != NEUTRAL else 0.8), (label, r)  # the thresholds
