"""Emotion judges: the lexicon judge, an HF classifier, an LLM over an OpenAI-compatible API, and
``make_judge`` / ``judge_matches`` that every place that judges goes through."""

from circuits.judges.base import (
    DEFAULT_LABEL_MAP,
    JUDGE_SPECS,
    STYLE_QUESTION,
    ClassifierJudge,
    JudgeSpecError,
    LLMJudge,
    LLMJudgeError,
    judge_matches,
    judge_name,
    make_judge,
)
from circuits.judges.lexicon import Judgement, LexiconJudge, judge, lexicon_judge

__all__ = [
    "DEFAULT_LABEL_MAP",
    "JUDGE_SPECS",
    "STYLE_QUESTION",
    "ClassifierJudge",
    "JudgeSpecError",
    "LLMJudge",
    "LLMJudgeError",
    "judge_matches",
    "judge_name",
    "make_judge",
    "Judgement",
    "LexiconJudge",
    "lexicon_judge",
    "judge",
]
