"""The toy model's training corpus: SEV train scenarios x prompts x our reply templates.

Every example is one chat: the system text of :class:`~circuits.sev.PromptSettings` (an emotion or
the neutral one), the SEV user turn ``"{scenario}\\n{event}"`` and an assistant reply drawn from
:mod:`circuits.toy.templates` with the event rewritten into the second person ("I lost my keys" ->
"you lost your keys"). Only the SEV *train* split is used; ``sev_test.jsonl`` stays held out.

To make the model *copy* the event instead of memorising the 480 training events, a share of the
chats (``splice_prob``) use a spliced event: the first part of one training event joined to the last
part of another (still only train-split text), so most events it sees are new sentences.

Only templates that the lexicon judge reads as their intended emotion and no other (neutral
templates: as neutral) are used, so that the evaluation measures whether the model learned to express the emotion
it was asked for, not how well the judge covers our phrasing. At least 30 remain per emotion.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

from circuits.emotions import EMOTIONS, NEUTRAL
from circuits.judge import default_judge
from circuits.sev import PromptSettings, SEVDataset
from circuits.toy.templates import EMOTION_TEMPLATES, NEUTRAL_TEMPLATES

MIN_TEMPLATES = 30
_PROBE_EVENT = "the package arrived on tuesday"

_PRONOUNS = {
    "i": "you", "me": "you", "my": "your", "mine": "yours", "myself": "yourself",
    "i'm": "you're", "i've": "you've", "i'll": "you'll", "i'd": "you'd",
    "we": "you", "us": "you", "our": "your", "ours": "yours", "ourselves": "yourselves",
    "we're": "you're", "we've": "you've", "we'll": "you'll", "we'd": "you'd",
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


def _render(template: str, event: str) -> str:
    text = template.format(event=second_person(event))
    return text[0].upper() + text[1:]


def usable_templates() -> dict[str, tuple[str, ...]]:
    """Label -> the templates the lexicon judge reads as that label (emotions and ``neutral``)."""
    judge = default_judge()
    out: dict[str, tuple[str, ...]] = {}
    for label, templates in [*EMOTION_TEMPLATES.items(), (NEUTRAL, NEUTRAL_TEMPLATES)]:
        verdicts = judge([t.format(event=_PROBE_EVENT) for t in templates])
        kept = tuple(t for t, j in zip(templates, verdicts)
                     if j.label == label and all(v == 0 for k, v in j.scores.items() if k != label))
        if len(kept) < MIN_TEMPLATES:
            raise ValueError(f"only {len(kept)} templates for {label!r} are judged as {label!r}; need {MIN_TEMPLATES}")
        out[label] = kept
    return out


@dataclass(frozen=True)
class Chat:
    """One training example: system text, user text and the assistant reply; ``label`` is the
    emotion of the system prompt or ``neutral``."""

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
    train: SEVDataset, *, replies_per_prompt: int = 3, seed: int = 0, splice_prob: float = 0.5,
    settings: PromptSettings | None = None,
) -> list[Chat]:
    """Every (scenario, valence, label) of ``train`` with ``replies_per_prompt`` different templates
    each (drawn without replacement, seeded), shuffled. Labels are the six emotions and neutral. Each
    chat's event is replaced by a spliced one (see module docstring) with probability ``splice_prob``."""
    settings = settings or PromptSettings()
    rng = random.Random(seed)
    templates = usable_templates()
    events = [e for s in train.scenarios for e in s.events.values()]
    chats: list[Chat] = []
    for scen in train.scenarios:
        for valence, real_event in scen.events.items():
            for label in (*EMOTIONS, NEUTRAL):
                system = settings.system_for(None if label == NEUTRAL else label)
                for template in rng.sample(templates[label], replies_per_prompt):
                    event = real_event
                    if rng.random() < splice_prob:
                        event = splice_events(real_event, rng.choice(events), rng)
                    chats.append(Chat(system, f"{scen.scenario}\n{event}", _render(template, event), label))
    rng.shuffle(chats)
    return chats
