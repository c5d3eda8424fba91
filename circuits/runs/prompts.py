"""``prompts``: which emotion prompt does this model follow? Prompted accuracy per placement and wording.

The paper puts the emotion instruction in the system prompt. Small instruct models often ignore it
there (SmolLM2-135M-Instruct gives the same reply for every emotion) and follow the same instruction in
the user turn. :func:`measure_prompts` generates greedily for every candidate
:class:`~circuits.core.sev.PromptSettings` on a subset of SEV items, judges the replies (echoes of the
instruction removed first, :mod:`circuits.judges.echo`) and reports, per candidate, the accuracy per
emotion and in all, how many replies were only an echo, and how many replies are the same for every
emotion (a model that ignores the instruction writes one reply per item).

Measure on the train split (the default) and keep the test split for the final numbers.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any, Sequence

from circuits.core.config import check_config, check_template, help_field
from circuits.core.emotions import EMOTIONS, check_emotions
from circuits.core.model import ModelHandle
from circuits.core.sev import PromptSettings, SEVDataset

PAPER = PromptSettings()

CANDIDATE_WORDINGS = (
    "Write your reply so that it is full of {emotion}.",
    "Answer in a way that clearly shows {emotion}.",
    "Imagine this happened to you. Describe your {emotion} about it in two sentences.",
    "Reply with strong {emotion}.",
)
"""User-turn instructions tried by default (written for this project)."""


def candidate_prompts(wordings: Sequence[str] = CANDIDATE_WORDINGS) -> list[tuple[str, PromptSettings]]:
    """``(name, settings)``: the paper's system prompt, each wording before the scenario in the user
    turn, the first wording after it, and the first wording in both places."""
    out = [("system: paper", PAPER)]
    for i, w in enumerate(wordings):
        out.append((f"user before: w{i + 1}", replace(PAPER, placement="user", user_instruction=w)))
    out.append(
        ("user after: w1", replace(PAPER, placement="user", user_instruction=wordings[0], instruction_position="after"))
    )
    out.append(("both: paper + w1", replace(PAPER, placement="both", user_instruction=wordings[0])))
    return out


@dataclass(frozen=True)
class PromptsConfig:
    """Options of :func:`measure_prompts`."""

    limit: int | None = help_field(4, "SEV scenarios (x 3 valences x emotions replies per candidate)", min=1)
    emotions: tuple[str, ...] = help_field(EMOTIONS, "subset of the six emotions")
    max_new_tokens: int = help_field(48, "tokens per reply", min=1)
    batch_size: int = help_field(48, "prompts per generation batch", min=1)
    wordings: tuple[str, ...] = help_field(CANDIDATE_WORDINGS, "user-turn wordings to try ({emotion} placeholder)")

    def __post_init__(self) -> None:
        check_config(self)
        for w in self.wordings:
            check_template(w, "PromptsConfig.wordings (--wordings)", required=("emotion",))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def measure_prompts(
    model: ModelHandle,
    dataset: SEVDataset,
    config: PromptsConfig | None = None,
    candidates: Sequence[tuple[str, PromptSettings]] | None = None,
    judge: Any = None,
    progress: bool = True,
    record: list[dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """One row per candidate: ``{"name", "settings", "accuracy", "per_emotion", "echo_only",
    "same_for_all_emotions", "n", "examples"}`` (fractions in [0, 1]). When ``record`` is a list, every
    reply is appended to it as ``{"text", "label" (the prompted emotion), "instruction", "candidate",
    "valence", "skeleton_id", "verdict"}`` (re-judge with ``emocircuits judge eval --by candidate``)."""
    from tqdm.auto import tqdm

    from circuits.core.generate import GenerationSettings, generate
    from circuits.judges.base import default_judge_instance, judge_replies
    from circuits.judges.echo import strip_echo
    from circuits.judges.fluency import default_fluency_check

    cfg = config or PromptsConfig()
    emotions = check_emotions(cfg.emotions)
    judge = judge or default_judge_instance(model.name)
    check = default_fluency_check(model.name)
    data = dataset.subset(cfg.limit)
    items = data.items(list(emotions))
    gen = GenerationSettings(max_new_tokens=cfg.max_new_tokens, batch_size=cfg.batch_size, repetition_penalty=1.1)
    rows = []
    for name, settings in tqdm(
        list(candidates or candidate_prompts(cfg.wordings)), desc="prompts", disable=not progress
    ):
        prompts = [model.chat_ids(*settings.chat(it.emotion, it.user_text)) for it in items]
        replies = generate(model, prompts, gen, progress=False, no_repeat_ngram_size=3)
        instructions = [settings.instructions(it.emotion, it.user_text) for it in items]
        judged = judge_replies(judge, replies, [it.emotion for it in items], instructions=instructions, fluency=check)
        hits, verdicts = judged.hits, judged.verdicts
        if record is not None:
            record += [
                {
                    "text": r,
                    "label": it.emotion,
                    "instruction": list(ins),
                    "candidate": name,
                    "valence": it.valence,
                    "skeleton_id": it.skeleton_id,
                    "verdict": v,
                    "raw_verdict": raw,
                    "broken": b,
                }
                for it, r, ins, v, raw, b in zip(
                    items, replies, instructions, verdicts, judged.raw_verdicts, judged.broken
                )
            ]
        echo_only = [bool(r.strip()) and not strip_echo(r, ins) for r, ins in zip(replies, instructions)]
        by_item: dict[tuple[str, str], set[str]] = {}
        for it, r in zip(items, replies):
            by_item.setdefault((it.skeleton_id, it.valence), set()).add(r.strip())
        per_emotion = {e: _mean([h for h, it in zip(hits, items) if it.emotion == e]) for e in emotions}
        rows.append(
            {
                "name": name,
                "settings": settings.to_dict(),
                "describe": settings.describe(),
                "accuracy": _mean(hits),
                "raw_accuracy": _mean(judged.raw_hits),
                "broken_share": _mean(judged.broken),
                "per_emotion": per_emotion,
                "echo_only": _mean(echo_only),
                "same_for_all_emotions": _mean([len(v) == 1 for v in by_item.values()]),
                "n": len(items),
                "examples": [
                    {"emotion": it.emotion, "reply": r, "judged": v}
                    for it, r, v in list(zip(items, replies, verdicts))[:: max(1, len(items) // 6)]
                ],
            }
        )
    return rows


def _mean(xs: Sequence[Any]) -> float:
    return sum(map(float, xs)) / len(xs) if xs else float("nan")


def prompts_table(rows: Sequence[dict[str, Any]]) -> str:
    """A plain-text table: candidate, fluent accuracy (broken replies are misses), raw accuracy, broken
    share, fluent accuracy per emotion, echo-only and same-reply fractions (in %)."""
    emotions = list(rows[0]["per_emotion"]) if rows else []
    head = (
        f"{'candidate':<22} {'flu':>5} {'raw':>5} {'brk':>5} "
        + " ".join(f"{e[:5]:>5}" for e in emotions)
        + "  echo  same"
    )
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(
            f"{r['name']:<22} {100 * r['accuracy']:5.1f} {100 * r['raw_accuracy']:5.1f} "
            f"{100 * r['broken_share']:5.1f} "
            + " ".join(f"{100 * r['per_emotion'][e]:5.0f}" for e in emotions)
            + f" {100 * r['echo_only']:5.0f} {100 * r['same_for_all_emotions']:5.0f}"
        )
    return "\n".join(lines)
