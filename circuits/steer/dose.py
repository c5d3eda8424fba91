"""Dose-response of the steered methods: judged accuracy, emotion score and perplexity against strength,
each against a random control of equal norm, with prompting and the neutral prompt as reference lines.

For each of direction steering, Emotion Vectors and circuit modulation and each strength of its grid,
on the dev items (train split, so the test split stays for the final numbers):

* ``accuracy``: fluent accuracy, the share of replies judged as the target emotion (echoes of the
  instruction removed) and not flagged broken by the fluency check; ``raw_accuracy`` without the
  check, ``broken_share`` the share flagged;
* ``emotion_score``: the judge's mean probability of the target emotion (judges that give
  probabilities; None otherwise);
* ``perplexity``: of the replies under the unsteered model with the emotion prompt (as in
  :mod:`circuits.steer.metrics`);
* the same for the **random controls** of each method, one per seed
  (:func:`circuits.runs.evaluate.method_factories` with ``null_seed``): random unit directions,
  random vectors with each layer's EV norm, the circuit's Delta-mu on random units. Per strength the
  control is summarised over its seeds (:func:`control_band`): mean accuracy and emotion score,
  geometric-mean perplexity, and the min-max spread that the figure draws as a band.

:func:`strength_to_match` interpolates the strength at which a method first reaches prompting's
accuracy, and the perplexity it costs there.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any, Callable, Sequence

from tqdm.auto import tqdm

from circuits.core.hooks import Intervention
from circuits.core.model import ModelHandle
from circuits.core.sev import PromptSettings, SEVDataset
from circuits.steer.metrics import STEERED, EvalConfig, evaluate_methods

Factory = Callable[[str, float], list[Intervention]]


def _emotion_score(judge: Any, record: list[dict[str, Any]]) -> float | None:
    """Mean judge probability of each reply's target emotion (echoes removed), or None."""
    if not hasattr(judge, "probabilities"):
        return None
    from circuits.judges.echo import strip_echoes

    texts = strip_echoes([r["text"] for r in record], [r["instruction"] for r in record])
    probs = judge.probabilities(list(texts))
    return sum(p.get(r["label"], 0.0) for p, r in zip(probs, record)) / max(1, len(record))


def _point(
    model: ModelHandle,
    dev: SEVDataset,
    method: str,
    factory: Factory | None,
    strength: float | None,
    cfg: EvalConfig,
    settings: PromptSettings | None,
    judge: Any,
) -> dict[str, Any]:
    record: list[dict[str, Any]] = []
    ivs = {method: (lambda e: factory(e, strength))} if factory is not None else {}
    m = evaluate_methods(
        model, dev, ivs, replace(cfg, methods=(method,)), settings, judge, progress=False, record=record
    )["methods"][method]
    return {
        "strength": strength,
        "accuracy": m["accuracy"],
        "raw_accuracy": m["raw_accuracy"],
        "broken_share": m["broken_share"],
        "perplexity": m["perplexity"],
        "emotion_score": _emotion_score(judge, record),
        "per_emotion": m["per_emotion"],
        "n": m["n"],
    }


def dose_response(
    model: ModelHandle,
    dev: SEVDataset,
    factories: dict[str, Factory],
    controls: Sequence[dict[str, Factory]],
    config: EvalConfig,
    settings: PromptSettings | None = None,
    judge: Any = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Every steered method of ``factories`` at every strength of ``config.grid(method)`` (or its configured
    strength alone when no grid is set) on ``config.sweep_limit`` dev scenarios, with its random control
    from each mapping of ``controls`` (one per seed). Returns ``{"reference": {"prompting": point,
    "neutral": point}, "methods": {method: {"points": [...], "control": [control_band(...) per strength],
    "match_prompting": strength_to_match(...)}}, "dev": {...}}``."""
    from collections.abc import Mapping

    from circuits.judges.base import default_judge_instance, judge_name

    if isinstance(controls, Mapping) or not controls:
        raise TypeError(
            "dose_response: controls must be a non-empty sequence with one {method: factory} mapping per seed"
        )
    judge = judge or default_judge_instance(model.name)
    cfg = replace(config, limit=config.sweep_limit, examples=0)
    ref = {m: _point(model, dev, m, None, None, cfg, settings, judge) for m in ("prompting", "neutral")}
    grids = {m: tuple(cfg.grid(m) or (cfg.strength(m),)) for m in STEERED if m in factories}
    out: dict[str, Any] = {}
    bar = tqdm(
        total=(1 + len(controls)) * sum(len(g) for g in grids.values()), desc="dose-response", disable=not progress
    )
    for method, grid in grids.items():
        points, control = [], []
        for s in grid:
            points.append(_point(model, dev, method, factories[method], float(s), cfg, settings, judge))
            bar.update(1)
            seeds = []
            for c in controls:
                seeds.append(_point(model, dev, method, c[method], float(s), cfg, settings, judge))
                bar.update(1)
            control.append(control_band(seeds))
        out[method] = {
            "points": points,
            "control": control,
            "match_prompting": strength_to_match(points, ref["prompting"]["accuracy"]),
        }
    bar.close()
    return {
        "reference": ref,
        "methods": out,
        "judge": judge_name(judge),
        "model": model.describe(),
        "dev": {
            "path": str(dev.path),
            "n_scenarios": len(dev.subset(cfg.sweep_limit)),
            "items_per_point": ref["neutral"]["n"],
        },
        "n_control_seeds": len(controls),
        "config": {"positions": cfg.positions, "max_new_tokens": cfg.max_new_tokens},
    }


BAND_KEYS = ("accuracy", "emotion_score", "perplexity")


def control_band(seeds: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One strength's random controls summarised over their seeds: ``accuracy`` and ``emotion_score`` the
    mean, ``perplexity`` the geometric mean (it spans orders of magnitude), ``lo`` / ``hi`` the min / max
    of each, and ``seeds`` the points themselves. A key no seed has (a judge without probabilities) is None."""
    out: dict[str, Any] = {
        "strength": seeds[0]["strength"],
        "n": seeds[0]["n"],
        "lo": {},
        "hi": {},
        "seeds": list(seeds),
    }
    for key in BAND_KEYS:
        vals = [float(p[key]) for p in seeds if p[key] is not None]
        if not vals:
            out[key], out["lo"][key], out["hi"][key] = None, None, None
            continue
        mean = math.exp(sum(map(math.log, vals)) / len(vals)) if key == "perplexity" else sum(vals) / len(vals)
        out["lo"][key], out["hi"][key] = min(vals), max(vals)
        out[key] = min(max(mean, min(vals)), max(vals))  # inside the band despite rounding
    return out


def strength_to_match(points: Sequence[dict[str, Any]], target: float) -> dict[str, Any]:
    """The smallest strength at which the accuracy curve (points sorted by strength) reaches ``target``,
    linearly interpolated between grid points, with the perplexity there (interpolated in log space);
    ``{"strength": None, ...}`` when no point reaches it."""
    pts = sorted(points, key=lambda p: p["strength"])
    prev = None
    for p in pts:
        if p["accuracy"] >= target:
            if prev is None or p["accuracy"] == prev["accuracy"]:
                return {"strength": p["strength"], "perplexity": p["perplexity"], "reached": True, "target": target}
            t = (target - prev["accuracy"]) / (p["accuracy"] - prev["accuracy"])
            strength = prev["strength"] + t * (p["strength"] - prev["strength"])
            lp = math.log(prev["perplexity"]) + t * (math.log(p["perplexity"]) - math.log(prev["perplexity"]))
            return {"strength": strength, "perplexity": math.exp(lp), "reached": True, "target": target}
        prev = p
    return {"strength": None, "perplexity": None, "reached": False, "target": target}


def dose_table(res: dict[str, Any]) -> str:
    """Plain text: per method and strength, accuracy / emotion score / perplexity, and the control's."""

    def cell(p: dict[str, Any]) -> str:
        score = "-" if p["emotion_score"] is None else f"{p['emotion_score']:.2f}"
        return f"{p['accuracy']:.0%} {score} {p['perplexity']:.1f}"

    def band(c: dict[str, Any]) -> str:
        lo, hi = c["lo"], c["hi"]
        return f"{cell(c)} (accuracy {lo['accuracy']:.0%}-{hi['accuracy']:.0%} over {len(c['seeds'])} seeds)"

    r = res["reference"]
    lines = [
        f"dose-response on {res['dev']['n_scenarios']} dev scenarios ({res['dev']['items_per_point']} replies per "
        f"point; judge {res['judge']}); cells: accuracy, emotion score, perplexity",
        f"  prompting {cell(r['prompting'])} | neutral {cell(r['neutral'])}",
    ]
    for method, t in res["methods"].items():
        lines.append(f"  {method}")
        for p, c in zip(t["points"], t["control"]):
            lines.append(f"    {p['strength']:>6g}: {cell(p):<22} random control: {band(c)}")
        mt = t["match_prompting"]
        lines.append(
            "    reaches prompting's accuracy at strength "
            + (
                f"{mt['strength']:.2f} (perplexity {mt['perplexity']:.1f})"
                if mt["reached"]
                else "- (not within the grid)"
            )
        )
    return "\n".join(lines)
