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
Prompting replies take it from the scores of their own generation pass (unsteered, that very
prompt) where the reply's text tokenizes back to the generated tokens; the other replies are scored
together after every method has replied, each distinct prompt run once into a KV cache for the
replies of all methods. Both equal the full teacher-forced pass per reply to float rounding (tested).
"""

from __future__ import annotations

import math
import time
from collections import Counter
from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Callable, Sequence

import torch
from tqdm.auto import tqdm

from circuits.core.config import ConfigError, check_config, help_field
from circuits.core.emotions import EMOTIONS, VALENCES, check_emotions
from circuits.core.generate import (
    GenerationSettings,
    ScoredReply,
    continuation_logprobs,
    generate,
    generate_scored,
)
from circuits.core.hooks import Intervention
from circuits.core.model import ModelHandle
from circuits.core.prefix import shared_prefix_logprobs
from circuits.core.sev import PromptSettings, SEVDataset
from circuits.judges.base import default_judge_instance, judge_name, judge_replies, judge_subject
from circuits.judges.fluency import resolve_fluency

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
    direction_layers: tuple[int, ...] | None = help_field(
        None, "layers for direction steering (None: 40-72% of the depth)", min=0
    )
    """Recorded for the report; the interventions themselves are passed to :func:`evaluate_methods`."""
    ev_alpha: float = help_field(2.0, "Emotion Vector steering strength")
    positions: str = help_field(
        "paper", "paper: each method's published positions; last: the last prompt token only", choices=("paper", "last")
    )
    """Recorded for the report: where the steering methods acted (``paper`` or ``last``)."""
    examples: int = 3
    circuit_lambdas: tuple[float, ...] | None = help_field(
        None, "circuit strengths to sweep on the dev split; the most accurate fluent one is used on the test split"
    )
    direction_alphas: tuple[float, ...] | None = help_field(None, "direction strengths to sweep (as --circuit-lambdas)")
    ev_alphas: tuple[float, ...] | None = help_field(None, "Emotion Vector strengths to sweep (as --circuit-lambdas)")
    direction_source: str = help_field(
        "sev",
        "directions of direction steering: sev (the run's SEV directions) or "
        "concept (emotion-concept vectors: emocircuits concepts --run DIR)",
        choices=("sev", "concept"),
    )
    sweep_limit: int = help_field(2, "train-split (dev) scenarios of the strength sweep", min=1)
    fluency_factor: float = help_field(2.0, "fluent: reply perplexity at most this times the neutral replies'", min=1)

    def __post_init__(self) -> None:
        check_config(self)

    def check_used(self, sweeps: bool = True) -> None:
        """Refuse an option the run would ignore (what a command calls on the options the user gave;
        library code narrows ``methods`` freely): a strength, grid or ``direction_layers`` of a method
        that ``methods`` leaves out and, with ``sweeps``, ``sweep_limit`` or ``fluency_factor`` set
        without any grid to sweep. A strength counts as set when it differs from its default."""
        steered = {
            "circuit": ("circuit_lambda", "circuit_lambdas"),
            "direction": ("direction_alpha", "direction_alphas", "direction_layers"),
            "emotion_vector": ("ev_alpha", "ev_alphas"),
        }
        defaults = {f.name: f.default for f in fields(self)}
        for method, names in steered.items():
            for name in names:
                if method not in self.methods and getattr(self, name) != defaults[name]:
                    raise ConfigError(
                        f"EvalConfig.{name} (--{name.replace('_', '-')}): for method {method}, which --methods "
                        f"{' '.join(self.methods)} leaves out; leave it out or add {method} to --methods"
                    )
        if sweeps and not any(self.grid(m) for m in steered if m in self.methods):
            for name in ("sweep_limit", "fluency_factor"):
                if getattr(self, name) != defaults[name]:
                    raise ConfigError(
                        f"EvalConfig.{name} (--{name.replace('_', '-')}): only used by a strength sweep; add "
                        "--circuit-lambdas, --direction-alphas or --ev-alphas, or leave it out"
                    )

    def strength(self, method: str) -> float:
        """The configured strength of a steered method (lambda for circuit, alpha otherwise)."""
        return {"circuit": self.circuit_lambda, "direction": self.direction_alpha, "emotion_vector": self.ev_alpha}[
            method
        ]

    def grid(self, method: str) -> tuple[float, ...] | None:
        """The strengths to sweep for a steered method (None: no sweep)."""
        return {"circuit": self.circuit_lambdas, "direction": self.direction_alphas, "emotion_vector": self.ev_alphas}[
            method
        ]

    def with_strength(self, method: str, value: float) -> "EvalConfig":
        field = {"circuit": "circuit_lambda", "direction": "direction_alpha", "emotion_vector": "ev_alpha"}[method]
        return replace(self, **{field: float(value)})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def distinct_n(texts: Sequence[str], n: int = 2) -> float:
    """Distinct n-grams over all n-grams of the whitespace-tokenised texts (0 when there are none)."""
    grams = [tuple(t[i : i + n]) for t in (x.split() for x in texts) for i in range(len(t) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 0.0


def reply_tokens(model: ModelHandle, replies: Sequence[str]) -> list[list[int]]:
    """The scored tokens of each reply: its text tokenized again (no special tokens) plus end of turn."""
    tok = model.tokenizer
    end = [tok.eos_token_id] if tok.eos_token_id is not None else []
    return [tok(r, add_special_tokens=False)["input_ids"] + end for r in replies]


def _perplexity(logprobs: torch.Tensor) -> float:
    """``exp(-mean)`` of ``[n]`` natural-log token probabilities (nan for no token)."""
    return math.exp(-logprobs.mean().item()) if logprobs.numel() else float("nan")


@torch.no_grad()
def reply_perplexity(
    model: ModelHandle,
    prompts: Sequence[list[int]],
    replies: Sequence[str],
    batch_size: int = 32,
    shared_prefix: bool = True,
    progress: bool = False,
) -> list[float]:
    """Perplexity of each reply (plus end of turn) given its prompt, under the unsteered model.

    ``shared_prefix``: each distinct prompt runs once into a KV cache and all its replies are scored on
    it (:func:`circuits.core.prefix.shared_prefix_logprobs`); False: one full teacher-forced pass per
    reply (:func:`circuits.core.generate.continuation_logprobs`, the reference; equal to float rounding).
    ``progress``: a bar over the replies (the shared-prefix path)."""
    conts = reply_tokens(model, replies)
    if shared_prefix:
        scored = shared_prefix_logprobs(
            model, prompts, conts, batch_size=batch_size, progress=progress, desc="reply perplexity"
        )
    else:
        scored = continuation_logprobs(model, prompts, conts, batch_size=batch_size)
    return [_perplexity(lp) for lp in scored]


def generation_perplexity(model: ModelHandle, reply: ScoredReply) -> float | None:
    """The perplexity :func:`reply_perplexity` gives ``reply`` after the prompt it was generated from,
    from the scores of its own generation pass, when the pass computed exactly that: the reply's text
    tokenizes back to the generated tokens and the end-of-turn score is known. None otherwise (the
    caller scores it the slow way). Only valid for a reply generated unsteered, from the same prompt
    its perplexity is asked under."""
    eos = model.tokenizer.eos_token_id
    ended = eos is not None and bool(reply.tokens) and reply.tokens[-1] == eos
    body = reply.tokens[:-1] if ended else reply.tokens
    if reply_tokens(model, [reply.text])[0] != body + ([eos] if eos is not None else []):
        return None
    if eos is None:
        return _perplexity(reply.logprobs)
    if reply.end_logprob is None:
        return None
    lp = reply.logprobs if ended else torch.cat([reply.logprobs, torch.tensor([reply.end_logprob])])
    return _perplexity(lp)


def evaluate_methods(
    model: ModelHandle,
    test: SEVDataset,
    interventions: dict[str, Callable[[str], list[Intervention]]],
    config: EvalConfig | None = None,
    settings: PromptSettings | None = None,
    judge: Callable[[list[str]], list[Any]] | None = None,
    progress: bool = True,
    record: list[dict[str, Any]] | None = None,
    fluency: Any = "default",
) -> dict[str, Any]:
    """Run every method of ``config.methods``. ``interventions[method](emotion)`` gives the
    interventions of a steered method (methods ``prompting``/``neutral`` need none). Returns the
    ``evaluation.json`` object: ``{"methods": {name: {"accuracy", "raw_accuracy", "broken_share",
    "per_emotion", "per_valence", "perplexity", "distinct_2", "n", "examples"}}, "config": ...,
    "fluency": ...}``. ``accuracy`` (and the per-emotion and per-valence ones) is **fluent accuracy**:
    replies the fluency check flags as broken count as misses (:func:`~circuits.judges.base.judge_replies`;
    ``fluency``: the check, ``"default"`` the shipped one, ``None`` none); ``raw_accuracy`` is the
    judge's alone and ``broken_share`` the share flagged. When ``record`` is a list, every reply is
    appended to it as ``{"text", "label" (the target emotion), "instruction", "method", "valence",
    "skeleton_id", "verdict" ("broken" or the judge's), "raw_verdict", "broken"}``: a labelled file
    ``emocircuits judge eval --by method`` re-judges with any judge.

    Perplexity costs one pass where two were made: a reply generated unsteered from the prompt it is
    scored under (``prompting``) takes its perplexity from the scores of its generation pass
    (:func:`generation_perplexity`); every other reply is scored after all methods have replied, each
    distinct prompt run once for the replies of every method (:func:`reply_perplexity`). The shared
    scoring time is split over the methods by their number of replies scored (``timings_s``)."""
    cfg = config or EvalConfig()
    settings = settings or PromptSettings()
    settings.check_sev_shaped("evaluate_methods")
    judge = judge or default_judge_instance(model.name)
    check = resolve_fluency(fluency, model.name)
    emotions = check_emotions(cfg.emotions)
    test = test.subset(cfg.limit)
    gen = GenerationSettings(
        max_new_tokens=cfg.max_new_tokens, batch_size=cfg.batch_size, repetition_penalty=cfg.repetition_penalty
    )
    result: dict[str, Any] = {
        "methods": {},
        "config": cfg.to_dict(),
        "judge": judge_name(judge),
        "judge_subject": judge_subject(judge, model.name),
        "fluency": check.describe() if check is not None else None,
        "prompts": settings.to_dict(),
        "model": model.describe(),
        "dataset": {"path": str(test.path), "sha256": test.sha256, "n_scenarios": len(test)},
    }
    done: dict[str, dict[str, Any]] = {}
    slow: list[tuple[str, int, list[int], str]] = []  # (method, row, prompt to score under, reply)
    for method in cfg.methods:
        if method not in METHODS:
            raise ValueError(f"unknown method {method!r}: expected some of {METHODS}")
        rows = [it for emotion in emotions for it in test.items([emotion])]
        steered_method = method not in ("prompting", "neutral")
        edits = {e: interventions[method](e) if steered_method else [] for e in emotions}
        prompts = [
            model.chat_ids(*settings.chat(it.emotion if method == "prompting" else None, it.user_text)) for it in rows
        ]
        ppl_prompts = [model.chat_ids(*settings.chat(it.emotion, it.user_text)) for it in rows]
        # the generation pass scores a reply exactly as perplexity asks when it ran unsteered on that prompt
        own = [not edits[it.emotion] and p == q for it, p, q in zip(rows, prompts, ppl_prompts)]
        t0 = time.perf_counter()
        # one call for all emotions: each row carries its emotion's edits, so batches stay full
        run = generate_scored if any(own) else generate
        out = run(
            model,
            prompts,
            gen,
            interventions=[edits[it.emotion] for it in rows],
            progress=progress,
            desc=f"evaluate {method}",
            min_new_tokens=cfg.min_new_tokens,
            no_repeat_ngram_size=cfg.no_repeat_ngram_size,
        )
        replies = [r.text for r in out] if any(own) else out
        t_gen = time.perf_counter()
        judged = judge_replies(
            judge,
            replies,
            [it.emotion for it in rows],
            instructions=[settings.instructions(it.emotion, it.user_text) for it in rows],
            fluency=check,
        )
        if record is not None:
            record += [
                {
                    "text": r,
                    "label": it.emotion,
                    "instruction": list(settings.instructions(it.emotion, it.user_text)),
                    "method": method,
                    "valence": it.valence,
                    "skeleton_id": it.skeleton_id,
                    "verdict": v,
                    "raw_verdict": raw,
                    "broken": b,
                }
                for it, r, v, raw, b in zip(rows, replies, judged.verdicts, judged.raw_verdicts, judged.broken)
            ]
        t_judge = time.perf_counter()
        ppl: list[float | None] = [generation_perplexity(model, r) if o else None for r, o in zip(out, own)]
        slow += [(method, k, ppl_prompts[k], replies[k]) for k, p in enumerate(ppl) if p is None]
        done[method] = {
            "rows": rows,
            "replies": replies,
            "judged": judged,
            "ppl": ppl,
            "timings_s": {
                "generation": t_gen - t0,
                "judge": t_judge - t_gen,
                "perplexity": time.perf_counter() - t_judge,
            },
        }
    t_ppl = time.perf_counter()
    scored = (
        reply_perplexity(model, [p for _, _, p, _ in slow], [r for *_, r in slow], progress=progress) if slow else []
    )
    t_shared = time.perf_counter() - t_ppl
    for (method, k, _, _), p in zip(slow, scored):
        done[method]["ppl"][k] = p
        done[method]["timings_s"]["perplexity"] += t_shared / len(slow)
    for method, d in done.items():
        result["methods"][method] = _method_result(d, emotions, cfg.examples)
    return result


def _method_result(d: dict[str, Any], emotions: Sequence[str], n_examples: int) -> dict[str, Any]:
    """One method's entry of ``evaluation.json`` from its rows, replies, verdicts and perplexities."""
    rows, replies, ppl = d["rows"], d["replies"], d["ppl"]
    hit, verdicts = d["judged"].hits, d["judged"].verdicts
    per_emotion = {e: _mean([h for h, it in zip(hit, rows) if it.emotion == e]) for e in emotions}
    per_valence = {v: _mean([h for h, it in zip(hit, rows) if it.valence == v]) for v in VALENCES}
    finite = [p for p in ppl if math.isfinite(p)]
    examples = []
    for e in emotions:
        examples += [
            {"emotion": e, "valence": it.valence, "user": it.user_text, "reply": r, "judged": v}
            for it, r, v in zip(rows, replies, verdicts)
            if it.emotion == e
        ][:n_examples]
    return {
        "accuracy": _mean(hit),
        "raw_accuracy": _mean(d["judged"].raw_hits),
        "broken_share": _mean(d["judged"].broken),
        "per_emotion": per_emotion,
        "per_valence": per_valence,
        "perplexity": math.exp(sum(math.log(p) for p in finite) / len(finite)) if finite else float("nan"),
        "distinct_2": distinct_n(replies),
        "n": len(rows),
        "judged": dict(Counter(verdicts)),
        "examples": examples,
        "timings_s": d["timings_s"],
    }


STEERED = ("direction", "emotion_vector", "circuit")
"""The methods with a strength (swept by :func:`strength_sweep`)."""


def strength_sweep(
    model: ModelHandle,
    dev: SEVDataset,
    factories: dict[str, Callable[[str, float], list[Intervention]]],
    config: EvalConfig,
    settings: PromptSettings | None = None,
    judge: Any = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Each steered method at every strength of its grid (``config.grid``) on the dev items ``dev``
    (``config.sweep_limit`` scenarios): judged accuracy and reply perplexity per strength, and the strength
    chosen for the test split: the most accurate *fluent* one (perplexity at most ``fluency_factor`` times
    the neutral replies'; ties go to the weaker strength). When no strength is fluent the least perplexing
    one is chosen and ``chosen_fluent`` is False. ``factories[method](emotion, strength)`` builds the
    interventions. Choosing on dev items keeps the test split for the final numbers."""
    cfg = replace(config, limit=config.sweep_limit, examples=0)
    neutral = evaluate_methods(model, dev, {}, replace(cfg, methods=("neutral",)), settings, judge, progress=False)
    ref = neutral["methods"]["neutral"]["perplexity"]
    table: dict[str, Any] = {}
    grids = {m: cfg.grid(m) for m in STEERED if m in config.methods and cfg.grid(m)}
    for method, grid in tqdm(list(grids.items()), desc="strength sweep", disable=not progress):
        points = []
        for s in grid:
            ivs = {method: lambda e, s=s: factories[method](e, s)}
            m = evaluate_methods(model, dev, ivs, replace(cfg, methods=(method,)), settings, judge, progress=False)[
                "methods"
            ][method]
            points.append(
                {
                    "strength": float(s),
                    "accuracy": m["accuracy"],
                    "perplexity": m["perplexity"],
                    "per_emotion": m["per_emotion"],
                    "fluent": bool(m["perplexity"] <= cfg.fluency_factor * ref),
                }
            )
        fluent = [p for p in points if p["fluent"]]
        best = (
            max(fluent, key=lambda p: (p["accuracy"], -abs(p["strength"])))
            if fluent
            else min(points, key=lambda p: p["perplexity"])
        )
        table[method] = {"points": points, "chosen": best["strength"], "chosen_fluent": bool(fluent)}
    return {
        "dev": {"path": str(dev.path), "n_scenarios": len(dev.subset(cfg.sweep_limit))},
        "neutral_perplexity": ref,
        "fluency_factor": cfg.fluency_factor,
        "methods": table,
    }


def sweep_table(sweep: dict[str, Any]) -> str:
    """Plain text: per method and strength, dev accuracy and perplexity, the chosen one starred."""
    lines = [
        f"strength sweep on {sweep['dev']['n_scenarios']} dev scenarios (neutral perplexity "
        f"{_short_number(sweep['neutral_perplexity'])}, fluent <= {sweep['fluency_factor']:g}x that)"
    ]
    for method, t in sweep["methods"].items():
        cells = [
            f"{p['strength']:g}: {p['accuracy']:.0%} ppl {_short_number(p['perplexity'])}"
            + ("*" if p["strength"] == t["chosen"] else "")
            for p in t["points"]
        ]
        lines.append(f"  {method:<15}" + "; ".join(cells) + ("" if t["chosen_fluent"] else "  (no fluent strength)"))
    return "\n".join(lines)


def _mean(xs: Sequence[bool | float]) -> float:
    return sum(xs) / len(xs) if xs else float("nan")


def method_table(result: dict[str, Any]) -> str:
    """Plain-text table: method, fluent accuracy (the headline: broken replies count as misses), raw
    accuracy, broken share, per-emotion fluent accuracy, perplexity, distinct-2. An evaluation from
    before the fluency check has no raw or broken column and its ``accuracy`` is raw."""
    methods = result["methods"]
    emotions = list(next(iter(methods.values()))["per_emotion"]) if methods else []
    checked = result.get("fluency") is not None and all("broken_share" in m for m in methods.values())
    ppl = {name: _short_number(m["perplexity"]) for name, m in methods.items()}
    width = max([8, *(len(v) + 1 for v in ppl.values())])  # a column never runs into its neighbour
    head = (
        f"{'method':<16}"
        + (f"{'fluent':>9}{'raw':>8}{'broken':>8}" if checked else f"{'accuracy':>9}")
        + "".join(f"{e[:7]:>9}" for e in emotions)
        + f"{'ppl':>{width}}"
        + f"{'dist-2':>8}"
    )
    lines = [head]
    for name, m in methods.items():
        lines.append(
            f"{name:<16}{m['accuracy']:>9.1%}"
            + (f"{m['raw_accuracy']:>8.1%}{m['broken_share']:>8.1%}" if checked else "")
            + "".join(f"{m['per_emotion'][e]:>9.1%}" for e in emotions)
            + f"{ppl[name]:>{width}}{m['distinct_2']:>8.2f}"
        )
    return "\n".join(lines)


def _short_number(x: float) -> str:
    """2 decimals below 1,000, then thousands separators, then scientific notation from 1e7."""
    if x != x or abs(x) == float("inf"):
        return str(x)
    return f"{x:.2f}" if abs(x) < 1e3 else f"{x:,.0f}" if abs(x) < 1e7 else f"{x:.2e}"
