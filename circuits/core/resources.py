"""Every data file the package opens, by name, located inside the installed package.

The files live under ``circuits/data/`` (and the toy model under ``circuits/toy/model/``) and ship
in the wheel (``[tool.setuptools.package-data]`` in ``pyproject.toml``); a test builds the wheel
and checks that every entry of :data:`DATA_FILES` is in it. ``sev_data/`` at the repository root
is a link to ``circuits/data/sev/`` for users working in a checkout.
"""

from __future__ import annotations

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent.parent
"""The installed ``circuits`` package folder."""

DATA_FILES: dict[str, str] = {
    "sev_train": "data/sev/sev.jsonl",
    "sev_test": "data/sev/sev_test.jsonl",
    "emotion_lexicon": "data/emotion_lexicon.json",
    "style_lexicon": "data/style_lexicon.json",
    "judge_replies": "data/judge_replies.jsonl",
    "judge_head_config": "data/judge_head/cfg.json",
    "judge_head_weights": "data/judge_head/head.safetensors",
    "judge_head_minilm_config": "data/judge_head_minilm/cfg.json",
    "judge_head_minilm_weights": "data/judge_head_minilm/head.safetensors",
    "fluency_calibration": "data/fluency.json",
    "implicit_word_families": "data/implicit/word_families.json",
    "implicit_stance": "data/implicit/stance.jsonl",
    "implicit_events": "data/implicit/events.jsonl",
    "implicit_stories": "data/implicit/stories.jsonl",
    "va_texts": "data/emotion_texts.jsonl",
    "va_ratings": "data/va_ratings.csv",
    "va_lexicon": "data/va_lexicon.tsv",
    "va_emotion_texts": "data/va/texts.jsonl",
    "va_emotion_ratings": "data/va/ratings.csv",
    "refusal_prompts": "data/va/refusal.csv",
    "sycophancy_items": "data/va/sycophancy.jsonl",
    "toy_config": "toy/model/config.json",
    "toy_generation_config": "toy/model/generation_config.json",
    "toy_weights": "toy/model/model.safetensors",
    "toy_tokenizer": "toy/model/tokenizer.json",
    "toy_tokenizer_config": "toy/model/tokenizer_config.json",
    "toy_chat_template": "toy/model/chat_template.jinja",
    "toy_train_log": "toy/model/train_log.json",
}
"""name -> path relative to the package directory (``/``-separated, as listed in the wheel)."""

DATA_DIRS: dict[str, str] = {
    "toy_model": "toy/model",
    "judge_head": "data/judge_head",
    "judge_head_minilm": "data/judge_head_minilm",
}
"""name -> folder relative to the package directory (every file in it is in ``DATA_FILES``)."""


def _lookup(table: dict[str, str], name: str, what: str) -> Path:
    try:
        return PACKAGE_DIR / table[name]
    except KeyError:
        raise KeyError(f"no shipped data {what} {name!r}; known: {', '.join(sorted(table))}") from None


def data_path(name: str) -> Path:
    """The absolute path of the shipped data file ``name`` (a key of :data:`DATA_FILES`)."""
    return _lookup(DATA_FILES, name, "file")


def data_dir(name: str) -> Path:
    """The absolute path of the shipped data folder ``name`` (a key of :data:`DATA_DIRS`)."""
    return _lookup(DATA_DIRS, name, "folder")
