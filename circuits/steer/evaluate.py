"""Compare steering methods on held-out SEV items: accuracy, fluency (perplexity), distinct-2.

For every (scenario, valence, emotion) of the test split and every method, the model replies
(greedy; min/max new tokens, repetition penalty and no-repeat n-gram as in the paper); a judge labels
the reply; a method's accuracy is the share of replies judged as the target emotion.

Methods (names used in ``evaluation.json``):

* ``prompting``: the emotion system prompt, no steering;
* ``neutral``: the neutral prompt, no steering (the floor);
* ``direction``: neutral prompt + direction steering (``alpha * RMS(h) * v_e`` on a layer range);
* ``emotion_vector``: neutral prompt + Emotion Vectors (``alpha * EV_l`` at every layer);
* ``circuit``: neutral prompt + circuit modulation (``lam * Delta-mu`` on the circuit's units).

Perplexity: of the reply tokens under the unsteered model, given the target emotion's prompt (the
model's own notion of a fluent reply in that emotion); reported as the geometric mean over replies.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import asdict, dataclass
from typing import Any, Callable, Sequence

import torch
from tqdm.auto import tqdm

from circuits.core.config import check_config, help_field
from circuits.core.emotions import EMOTIONS, VALENCES, check_emotions
from circuits.core.generate import GenerationSettings, continuation_logprobs, generate
from circuits.core.hooks import Intervention, make_hooks
from circuits.judges.lexicon import default_judge
from circuits.judges.base import judge_matches, judge_name
from circuits.core.model import ModelHandle
from circuits.core.sev import PromptSettings, SEVDataset

METHODS = ("prompting", "neutral", "direction", "emotion_vector", "circuit")


@dataclass(frozen=True)
class EvalConfig:
    methods: tuple[str, ...] = help_field(METHODS, "steering methods to compare", choices=METHODS)
    emotions: tuple[str, ...] = help_field(EMOTIONS, "subset of the six emotions")
    limit: int | None = help_field(None, "use only N test scenarios", min=1)
    max_new_tokens: int = 48
    min_new_tokens: int = 10
    repetition_penalty: float = 1.1
    no_repeat_ngram_size: int = 3
    batch_size: int = 48
    circuit_lambda: float = help_field(1.0, "circuit modulation strength (x Delta-mu)")
    direction_alpha: float = help_field(8.0, "direction steering strength (x residual RMS)")
    direction_layers: tuple[int, ...] | None = help_field(None, "layers for direction steering (None: 40-72% of "
                                                                "the depth)", min=0)
    """Recorded for the report; the interventions themselves are passed to :func:`evaluate_methods`."""
    ev_alpha: float = help_field(2.0, "Emotion Vector steering strength")
    positions: str = help_field("paper", "paper: each method's published positions; last: the last prompt token "
                                "only", choices=("paper", "last"))
    """Recorded for the report: where the steering methods acted (``paper`` or ``last``)."""
    examples: int = 3

    def __post_init__(self) -> None:
        check_config(self)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def distinct_n(texts: Sequence[str], n: int = 2) -> float:
    """Distinct n-grams over all n-grams of the whitespace-tokenised texts (0 when there are none)."""
    grams = [tuple(t[i:i + n]) for t in (x.split() for x in texts) for i in range(len(t) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 0.0


@torch.no_grad()
def reply_perplexity(model: ModelHandle, prompts: Sequence[list[int]], replies: Sequence[str],
                     batch_size: int = 32) -> list[float]:
    """Perplexity of each reply (plus end of turn) given its prompt, under the unsteered model."""
    tok = model.tokenizer
    end = [tok.eos_token_id] if tok.eos_token_id is not None else []
    conts = [tok(r, add_special_tokens=False)["input_ids"] + end for r in replies]
    lps = continuation_logprobs(model, prompts, conts, batch_size=batch_size)
    return [math.exp(-lp.mean().item()) if lp.numel() else float("nan") for lp in lps]


def evaluate_methods(
    model: ModelHandle,
    test: SEVDataset,
    interventions: dict[str, Callable[[str], list[Intervention]]],
    config: EvalConfig | None = None,
    settings: PromptSettings | None = None,
    judge: Callable[[list[str]], list[Any]] | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Run every method of ``config.methods``. ``interventions[method](emotion)`` gives the
    interventions of a steered method (methods ``prompting``/``neutral`` need none). Returns the
    ``evaluation.json`` object: ``{"methods": {name: {"accuracy", "per_emotion", "per_valence",
    "perplexity", "distinct_2", "n", "examples"}}, "config": ...}``."""
    cfg = config or EvalConfig()
    settings = settings or PromptSettings()
    judge = judge or default_judge()
    emotions = check_emotions(cfg.emotions)
    test = test.subset(cfg.limit)
    gen = GenerationSettings(max_new_tokens=cfg.max_new_tokens, batch_size=cfg.batch_size,
                             repetition_penalty=cfg.repetition_penalty)
    result: dict[str, Any] = {"methods": {}, "config": cfg.to_dict(), "judge": judge_name(judge),
                              "prompts": settings.to_dict(),
                              "model": model.describe(),
                              "dataset": {"path": str(test.path), "sha256": test.sha256, "n_scenarios": len(test)}}
    for method in cfg.methods:
        if method not in METHODS:
            raise ValueError(f"unknown method {method!r}: expected some of {METHODS}")
        rows, replies, ppl_prompts = [], [], []
        for emotion in tqdm(emotions, desc=f"evaluate {method}", disable=not progress):
            items = test.items([emotion])
            prompted = emotion if method == "prompting" else None
            prompts = [model.chat_ids(*settings.chat(prompted, it.user_text)) for it in items]
            ivs = interventions[method](emotion) if method not in ("prompting", "neutral") else []
            outs = generate(model, prompts, gen, hooks=lambda idx, ivs=ivs: make_hooks(model, ivs), progress=False,
                            min_new_tokens=cfg.min_new_tokens, no_repeat_ngram_size=cfg.no_repeat_ngram_size)
            rows += items
            replies += outs
            ppl_prompts += [model.chat_ids(*settings.chat(emotion, it.user_text)) for it in items]
        hit, verdicts = judge_matches(judge, replies, [it.emotion for it in rows],
                                      instructions=[settings.instructions(it.emotion) for it in rows])
        ppl = reply_perplexity(model, ppl_prompts, replies)
        per_emotion = {e: _mean([h for h, it in zip(hit, rows) if it.emotion == e]) for e in emotions}
        per_valence = {v: _mean([h for h, it in zip(hit, rows) if it.valence == v]) for v in VALENCES}
        finite = [p for p in ppl if math.isfinite(p)]
        examples = []
        for e in emotions:
            examples += [{"emotion": e, "valence": it.valence, "user": it.user_text, "reply": r, "judged": v}
                         for it, r, v in zip(rows, replies, verdicts) if it.emotion == e][: cfg.examples]
        result["methods"][method] = {
            "accuracy": _mean(hit), "per_emotion": per_emotion, "per_valence": per_valence,
            "perplexity": math.exp(sum(math.log(p) for p in finite) / len(finite)) if finite else float("nan"),
            "distinct_2": distinct_n(replies), "n": len(rows), "judged": dict(Counter(verdicts)), "examples": examples,
        }
    return result


def _mean(xs: Sequence[bool | float]) -> float:
    return sum(xs) / len(xs) if xs else float("nan")


def method_table(result: dict[str, Any]) -> str:
    """Plain-text table: method, accuracy, per-emotion accuracy, perplexity, distinct-2."""
    methods = result["methods"]
    emotions = list(next(iter(methods.values()))["per_emotion"]) if methods else []
    ppl = {name: _short_number(m["perplexity"]) for name, m in methods.items()}
    width = max([8, *(len(v) + 1 for v in ppl.values())])  # a column never runs into its neighbour
    head = (f"{'method':<16}{'accuracy':>9}" + "".join(f"{e[:7]:>9}" for e in emotions) + f"{'ppl':>{width}}"
            + f"{'dist-2':>8}")
    lines = [head]
    for name, m in methods.items():
        lines.append(f"{name:<16}{m['accuracy']:>9.1%}" + "".join(f"{m['per_emotion'][e]:>9.1%}" for e in emotions)
                     + f"{ppl[name]:>{width}}{m['distinct_2']:>8.2f}")
    return "\n".join(lines)


def _short_number(x: float) -> str:
    """2 decimals below 1,000, then thousands separators, then scientific notation from 1e7."""
    if x != x or abs(x) == float("inf"):
        return str(x)
    return f"{x:.2f}" if abs(x) < 1e3 else f"{x:,.0f}" if abs(x) < 1e7 else f"{x:.2e}"


def __getattr__(name: str):
    if name == "write_report":  # moved to circuits.runs.evaluate in 0.2 (it writes a run directory)
        from circuits.runs.evaluate import write_report

        return write_report
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
