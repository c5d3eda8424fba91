"""The toy model's training corpus: SEV train scenarios x prompts x our reply templates.

Every example is one chat: the system text of :class:`~circuits.core.sev.PromptSettings` (an emotion or
the neutral one), the SEV user turn ``"{scenario}\\n{event}"`` and an assistant reply drawn from
:mod:`circuits.toy.templates` with the event rewritten into the second person ("I lost my keys" ->
"you lost your keys"). Only the SEV *train* split is used; ``sev_test.jsonl`` stays held out.

To make the model *copy* the event instead of memorising the 480 training events, a share of the
chats (``splice_prob``) use a spliced event: the first part of one training event joined to the last
part of another (still only train-split text), so most events it sees are new sentences.

Every emotional reply opens with one of :data:`~circuits.toy.templates.EMOTION_OPENERS` (a short
exclamation such as "Outrageous!"), so the first reply token commits to an emotion, as instruct models
usually show a requested emotion in their first words. The neutral system prompt leaves the affect
open: a share ``open_neutral`` of its chats get an emotional reply (an emotion drawn at random), the
rest a calm one. The model therefore learns to continue in whatever emotion its reply has begun, and
its state under the neutral prompt sits between the emotions rather than apart from them; greedy
decoding under the neutral prompt still gives calm replies (the toy evaluation measures this).

Only templates (and openers) that the lexicon judge reads as their intended emotion and no other (neutral
templates: as neutral) are used, so that the evaluation measures whether the model learned to express the emotion
it was asked for, not how well the judge covers our phrasing. At least 30 remain per emotion.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

from circuits.core.emotions import EMOTIONS, NEUTRAL
from circuits.core.sev import PromptSettings, SEVDataset
from circuits.judges.lexicon import lexicon_judge
from circuits.toy.templates import EMOTION_OPENERS, EMOTION_TEMPLATES, NEUTRAL_TEMPLATES

MIN_TEMPLATES = 30
_PROBE_EVENT = "the package arrived on tuesday"

_PRONOUNS = {
    "i": "you",
    "me": "you",
    "my": "your",
    "mine": "yours",
    "myself": "yourself",
    "i'm": "you're",
    "i've": "you've",
    "i'll": "you'll",
    "i'd": "you'd",
    "we": "you",
    "us": "you",
    "our": "your",
    "ours": "yours",
    "ourselves": "yourselves",
    "we're": "you're",
    "we've": "you've",
    "we'll": "you'll",
    "we'd": "you'd",
}
_VERB_AFTER_I = {"am": "are", "was": "were"}


def second_person(event: str) -> str:
    """Rewrite a first-person event sentence for a reply: pronouns to "you", lowercase first letter
    (unless it is "I" turned into "you" or a proper noun), no final period.

    >>> second_person("My manager said I was right.")
    'your manager said you were right'
    """
    words = event.strip().rstrip(".").split(" ")
    out: list[str] = []
    prev_i = False
    for w in words:
        m = re.fullmatch(r"([^A-Za-z']*)([A-Za-z']+)([^A-Za-z']*)", w)
        if not m:
            out.append(w)
            prev_i = False
            continue
        pre, core, post = m.groups()
        low = core.lower()
        if low in _PRONOUNS:
            new = _PRONOUNS[low]
        elif prev_i and low in _VERB_AFTER_I:
            new = _VERB_AFTER_I[low]
        else:
            new = core
        out.append(pre + new + post)
        prev_i = low == "i"
    text = " ".join(out)
    first = words[0]
    if first and first[0].isupper() and (len(first) == 1 or first[1:].islower()) and first not in ("I",):
        text = text[0].lower() + text[1:]
    return text


def _render(template: str, event: str, opener: str | None = None) -> str:
    text = template.format(event=second_person(event))
    text = text[0].upper() + text[1:]
    return f"{opener} {text}" if opener else text


def usable_templates() -> dict[str, tuple[str, ...]]:
    """Label -> the templates the lexicon judge reads as that label (emotions and ``neutral``)."""
    judge = lexicon_judge()
    out: dict[str, tuple[str, ...]] = {}
    for label, templates in [*EMOTION_TEMPLATES.items(), (NEUTRAL, NEUTRAL_TEMPLATES)]:
        verdicts = judge([t.format(event=_PROBE_EVENT) for t in templates])
        kept = tuple(
            t
            for t, j in zip(templates, verdicts)
            if j.label == label and all(v == 0 for k, v in j.scores.items() if k != label)
        )
        if len(kept) < MIN_TEMPLATES:
            raise ValueError(f"only {len(kept)} templates for {label!r} are judged as {label!r}; need {MIN_TEMPLATES}")
        out[label] = kept
    return out


def usable_openers() -> dict[str, tuple[str, ...]]:
    """Emotion -> the openers the lexicon judge reads as that emotion and nothing else. Raises if an
    emotion has none, or if two labels share an opener's first word (openers must commit)."""
    judge = lexicon_judge()
    out: dict[str, tuple[str, ...]] = {}
    for emotion, openers in EMOTION_OPENERS.items():
        kept = tuple(
            o
            for o, j in zip(openers, judge(list(openers)))
            if j.label == emotion and all(v == 0 for k, v in j.scores.items() if k != emotion)
        )
        if not kept:
            raise ValueError(f"no opener for {emotion!r} is judged as {emotion!r}")
        out[emotion] = kept
    firsts: dict[str, str] = {
        t.split()[0].strip(",.:!?").lower(): NEUTRAL for t in NEUTRAL_TEMPLATES if not t.startswith("{")
    }
    for emotion, openers in out.items():
        for o in openers:
            w = o.split()[0].strip(",.:!?").lower()
            if firsts.setdefault(w, emotion) != emotion:
                raise ValueError(f"opener {o!r} of {emotion!r} starts like a {firsts[w]!r} reply")
    return out


@dataclass(frozen=True)
class Chat:
    """One training example: system text, user text and the assistant reply; ``label`` is the
    emotion the reply expresses, or ``neutral``."""

    system: str
    user: str
    reply: str
    label: str


def splice_events(a: str, b: str, rng: random.Random) -> str:
    """The first 40-60% of the words of event ``a`` followed by the last 40-60% of event ``b``."""
    wa, wb = a.rstrip(".").split(), b.rstrip(".").split()
    cut_a = max(1, round(len(wa) * rng.uniform(0.4, 0.6)))
    cut_b = max(1, round(len(wb) * rng.uniform(0.4, 0.6)))
    return " ".join(wa[:cut_a] + wb[cut_b:]) + "."


def build_corpus(
    train: SEVDataset,
    *,
    replies_per_prompt: int = 3,
    seed: int = 0,
    splice_prob: float = 0.5,
    open_neutral: float = 0.0,
    openers: bool = True,
    settings: PromptSettings | None = None,
) -> list[Chat]:
    """Every (scenario, valence, prompt label) of ``train`` with ``replies_per_prompt`` different
    templates each (drawn without replacement, seeded), shuffled. Prompt labels are the six emotions
    and neutral. Each chat's event is replaced by a spliced one (see module docstring) with
    probability ``splice_prob``; a neutral-prompt chat gets an emotional reply with probability
    ``open_neutral``; emotional replies start with an opener when ``openers``. ``Chat.label`` is the
    emotion of the reply (``neutral`` for a calm one)."""
    if not 0.0 <= open_neutral <= 1.0:
        raise ValueError(f"open_neutral must be in [0, 1], got {open_neutral}")
    settings = settings or PromptSettings()
    rng = random.Random(seed)
    templates = usable_templates()
    opener_sets = usable_openers() if openers else {}
    events = [e for s in train.scenarios for e in s.events.values()]
    chats: list[Chat] = []
    for scen in train.scenarios:
        for _valence, real_event in scen.events.items():
            for label in (*EMOTIONS, NEUTRAL):
                system = settings.system_for(None if label == NEUTRAL else label)
                for template in rng.sample(templates[label], replies_per_prompt):
                    reply_label = label
                    if open_neutral > 0 and label == NEUTRAL and rng.random() < open_neutral:
                        reply_label = rng.choice(EMOTIONS)
                        template = rng.choice(templates[reply_label])
                    event = real_event
                    if rng.random() < splice_prob:
                        event = splice_events(real_event, rng.choice(events), rng)
                    opener = rng.choice(opener_sets[reply_label]) if reply_label in opener_sets else None
                    chats.append(
                        Chat(system, f"{scen.scenario}\n{event}", _render(template, event, opener), reply_label)
                    )
    rng.shuffle(chats)
    return chats
