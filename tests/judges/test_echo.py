"""Echoes of the instruction are removed before judging; replies that express the emotion stay."""

from __future__ import annotations

import pytest

from circuits.core.sev import PromptSettings
from circuits.judges.base import judge_matches
from circuits.judges.echo import strip_echo
from circuits.judges.lexicon import lexicon_judge

USER = PromptSettings(placement="user", user_instruction="Reply with strong {emotion}.")


@pytest.mark.parametrize(
    "reply",
    [
        "Reply: Full of disgust.",
        "Replying in an extremely fearful tone...",
        "Always reply in anger.",
        "Sure! Here is an angry reply:",
        "Reply with strong sadness.",
    ],
)
def test_pure_echoes_leave_nothing(reply):
    assert strip_echo(reply, USER.instructions("fear")) == ""


@pytest.mark.parametrize(
    "reply",
    [
        "So sad.",
        "I am so happy today!",
        "Ugh, how trite.",
        "How dare you ignore me?",
        "I'm terrified the bridge will collapse.",
        "What a wonderful surprise!",
    ],
)
def test_replies_that_express_an_emotion_are_unchanged(reply):
    assert strip_echo(reply, USER.instructions("anger")) == reply


def test_echo_sentence_removed_rest_kept():
    reply = "Replying in an extremely fearful tone... The dog ran away and I cannot breathe!"
    assert strip_echo(reply, USER.instructions("fear")) == "The dog ran away and I cannot breathe!"


def test_instruction_words_count_as_echo_only_with_the_instruction():
    """A sentence made of the (unusual) instruction's words is an echo given that instruction only."""
    odd = PromptSettings(placement="user", user_instruction="Channel pure volcanic {emotion}.")
    reply = "Channel pure volcanic anger. The meeting was a disaster."
    assert strip_echo(reply, odd.instructions("anger")) == "The meeting was a disaster."
    assert strip_echo(reply, ()) == reply


def test_judge_matches_discounts_echoes():
    judge = lexicon_judge()
    replies = ["Reply: Full of disgust.", "That is revolting, I feel sick just thinking about it."]
    hits_raw, _ = judge_matches(judge, replies, ["disgust", "disgust"])
    hits, verdicts = judge_matches(
        judge, replies, ["disgust", "disgust"], instructions=[USER.instructions("disgust")] * 2
    )
    assert hits_raw[0] and not hits[0]  # the echo fooled the word-counting judge, and no longer does
    assert hits[1] == hits_raw[1]
    with pytest.raises(ValueError, match="instruction lists"):
        judge_matches(judge, replies, ["disgust", "disgust"], instructions=[()])
