"""Emotion judges: the lexicon judge, an HF classifier, an LLM over an OpenAI-compatible API, and
``make_judge``, and ``judge_replies`` (the fluency check, then ``judge_matches``) that every place that
judges goes through."""

from circuits.judges.base import (
    DEFAULT_LABEL_MAP,
    JUDGE_SPECS,
    STYLE_QUESTION,
    ClassifierJudge,
    JudgedReplies,
    JudgeSpecError,
    LLMJudge,
    LLMJudgeError,
    judge_matches,
    judge_name,
    judge_replies,
    judged_labels,
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
    "JudgedReplies",
    "judge_matches",
    "judge_name",
    "judge_replies",
    "judged_labels",
    "make_judge",
    "Judgement",
    "LexiconJudge",
    "lexicon_judge",
    "judge",
]
