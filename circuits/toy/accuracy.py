"""Measure the toy model on held-out SEV scenarios: does each system prompt get its emotion?

For every (scenario, valence) of the test split and every label (six emotion prompts and the neutral
prompt) the model replies greedily; the lexicon judge labels the reply. The result is the share of
replies judged as the prompted label, per label.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from circuits.core.artifacts import InputError
from circuits.core.config import check_number
from circuits.core.emotions import EMOTIONS, NEUTRAL
from circuits.core.generate import GenerationSettings, generate
from circuits.core.model import ModelHandle
from circuits.core.sev import PromptSettings, SEVDataset
from circuits.judges.lexicon import judge


def evaluate_toy(
    model: ModelHandle,
    test: SEVDataset,
    *,
    settings: PromptSettings | None = None,
    generation: GenerationSettings | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Returns ``{"per_label": {label: {"n", "accuracy", "judged": {label: count}}}, "examples": [...]}``
    where ``accuracy`` is the fraction of replies judged as the prompted label. ``test`` without
    scenarios, or ``generation.max_new_tokens`` below 1, is refused (:class:`InputError`) before any
    reply is generated."""
    settings = settings or PromptSettings()
    generation = generation or GenerationSettings()
    check_number(generation.max_new_tokens, "max_new_tokens (--max-new-tokens)", int, min=1)
    if not test.scenarios:
        raise InputError(f"{test.path}: no scenarios to evaluate; expected at least one")
    labels = (*EMOTIONS, NEUTRAL)
    rows: list[tuple[str, str, str, str]] = []  # (label, skeleton_id, valence, user)
    for scen in test.scenarios:
        for valence, event in scen.events.items():
            for label in labels:
                rows.append((label, scen.skeleton_id, valence, f"{scen.scenario}\n{event}"))
    prompts = [model.chat_ids(*settings.chat(None if r[0] == NEUTRAL else r[0], r[3])) for r in rows]
    replies = generate(model, prompts, generation, progress=progress, desc="toy evaluate")
    verdicts = judge(replies)
    per_label: dict[str, Any] = {}
    for label in labels:
        got = [v.label for r, v in zip(rows, verdicts) if r[0] == label]
        counts = Counter(got)
        per_label[label] = {"n": len(got), "accuracy": counts[label] / max(1, len(got)), "judged": dict(counts)}
    examples = [
        {"label": r[0], "skeleton_id": r[1], "valence": r[2], "user": r[3], "reply": rep, "judged": v.label}
        for r, rep, v in zip(rows, replies, verdicts)
    ]
    return {"per_label": per_label, "examples": examples}


def format_table(result: dict[str, Any]) -> str:
    """A plain-text table: label, n, accuracy (share judged as the prompted label), top confusions."""
    lines = [f"{'system prompt':<14}{'n':>6}{'judged as prompted':>21}   other judgements"]
    for label, r in result["per_label"].items():
        other = ", ".join(f"{k} {v}" for k, v in sorted(r["judged"].items(), key=lambda kv: -kv[1]) if k != label)
        lines.append(f"{label:<14}{r['n']:>6}{r['accuracy']:>20.1%}   {other or '-'}")
    return "\n".join(lines)
