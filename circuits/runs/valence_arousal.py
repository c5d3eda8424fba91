"""The ``va`` command as a library call: :class:`VAConfig` and :func:`run_va` (axes, checks, steering, probes, figures)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from circuits.core.artifacts import staged_dir, write_atomic, write_json_atomic
from circuits.core.config import ConfigError, check_config, check_template, config_from_dict, help_field
from circuits.core.model import ModelHandle
from circuits.core.provenance import provenance
from circuits.core.resources import data_path
from circuits.figures.va import va_figures
from circuits.va.loaders import VAInputError, load_labelled_texts, load_va_lexicon, load_va_ratings
from circuits.va.probes import (
    REFUSAL_PHRASES,
    load_prompts,
    load_sycophancy,
    refusal_rates,
    refusal_token_logits,
    sycophancy_probs,
)
from circuits.va.subspace import (
    AROUSAL_QUESTION,
    VALENCE_QUESTION,
    axis_steering,
    circumplex,
    emotion_vectors_from_texts,
    fit_va_axes,
    heldout_fit,
    lexicon_check,
    random_directions,
    self_report_va,
    text_activations,
)


# ------------------------------------------------------------------------------------------ command
@dataclass(frozen=True)
class VAConfig:
    """Options of :func:`run_va`; file paths default to the small files shipped in circuits/data."""

    texts: str = help_field(
        str(data_path("va_emotion_texts")),
        "labelled texts (CSV or JSONL; default: the shipped 350 texts of 25 emotions, 14 each)",
    )
    ratings: str | None = help_field(
        str(data_path("va_emotion_ratings")),
        "CSV emotion,valence,arousal (default: the shipped 1-9 ratings of the 25 emotions, ours)",
    )
    self_report: bool = help_field(False, "ask the model to rate valence and arousal (instead of --ratings)")
    lexicon: str | None = help_field(
        str(data_path("va_lexicon")), "NRC-VAD style word,valence,arousal file (default: a small shipped one)"
    )
    vocab_only: bool = help_field(False, "lexicon words that are single tokens only")
    layer: int | None = help_field(None, "layer of the axes (None: 60% of the depth)", min=0)
    position: str = help_field(
        "mean", "text representation: mean over tokens or the last token", choices=("mean", "last")
    )
    emotions: tuple[str, ...] | None = help_field(None, "labels to use (None: every label with texts)")
    alphas: tuple[float, ...] = help_field(
        (-4.0, -2.0, 0.0, 2.0, 4.0), "steering strengths along the axes (x residual RMS)"
    )
    steer_layers: tuple[int, ...] | None = None
    steer_limit: int = help_field(8, "SEV test scenarios for VA steering", min=1)
    random_seeds: int = 3
    refusal: str | None = help_field(
        None,
        "CSV of prompts (prompt[,type]) for the refusal probe, or 'shipped' (110 harmful requests and 110 "
        "benign look-alikes); rates are reported overall and per type",
    )
    refusal_phrases: tuple[str, ...] | None = None
    """Phrases of the refusal detector (case-insensitive, matched in a reply's first 120 characters);
    None: :data:`REFUSAL_PHRASES`. From a file: :func:`load_refusal_phrases`."""
    sycophancy: str | None = help_field(
        None, "A/B JSONL for the sycophancy probe, or 'shipped' (120 items, matching answer 60 A / 60 B)"
    )
    probe_limit: int | None = help_field(None, "use at most N items of each probe set (spread over the file)", min=1)
    refusal_tokens: int = help_field(24, "tokens per reply of the refusal probe", min=1)
    limit: int | None = help_field(None, "use at most N labelled texts per label", min=1)
    """At most this many labelled texts per label (quick runs)."""
    valence_question: str = VALENCE_QUESTION
    arousal_question: str = AROUSAL_QUESTION
    """Self-report question templates (``{emotion}`` is filled in), used when ``self_report``."""

    def __post_init__(self) -> None:
        for name in ("emotions", "alphas", "steer_layers", "refusal_phrases"):  # lists (JSON) -> tuples
            v = getattr(self, name)
            if isinstance(v, list):
                object.__setattr__(self, name, tuple(v))
        check_config(self)
        if self.refusal_phrases is not None:
            if (
                isinstance(self.refusal_phrases, str)
                or not self.refusal_phrases
                or not all(isinstance(p, str) and p.strip() for p in self.refusal_phrases)
            ):
                raise ConfigError(
                    f"VAConfig.refusal_phrases: expected a non-empty tuple of non-empty strings or None, "
                    f"got {self.refusal_phrases!r}"
                )
        for name in ("valence_question", "arousal_question"):
            check_template(getattr(self, name), f"VAConfig.{name}", required=("emotion",))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "VAConfig":
        """Build from :meth:`to_dict` output (lists become tuples); unknown keys raise ValueError."""
        return config_from_dict(cls, d)


def _check_requested(cfg: VAConfig, have: list[str], ratings: dict | None) -> None:
    """Refuse requested emotions (``--emotions``) without texts, or without ratings when ratings are
    known: a misspelt label is an error, not a silently smaller analysis."""
    if not cfg.emotions:
        return
    missing = [e for e in cfg.emotions if e not in have]
    if missing:
        raise VAInputError(
            f"VAConfig.emotions (--emotions): no texts labelled {missing} in {cfg.texts} (labels there: {have})"
        )
    unrated = [e for e in cfg.emotions if ratings is not None and e not in ratings]
    if unrated:
        raise VAInputError(
            f"VAConfig.emotions (--emotions): no VA ratings for {unrated} in {cfg.ratings} (rated: {sorted(ratings)})"
        )


def run_va(
    model: ModelHandle, out_dir: str | Path, cfg: VAConfig | None = None, progress: bool = True, judge: Any = None
) -> dict:
    """Geometry (vectors, PCA + ridge axes, circumplex), lexicon check, VA steering and the optional
    behaviour probes; writes ``axes.*``, ``vectors.safetensors``, ``summary.json`` and figures.
    ``judge``: the label judge whose verdicts on the steered replies are counted (default:
    the model's :func:`~circuits.judges.base.recommended_judge`); named in the summary as ``"judge"``."""
    from circuits.judges.base import default_judge_instance, judge_name

    cfg = cfg or VAConfig()
    check_va_out(out_dir)
    judge = judge or default_judge_instance(model.name)
    inputs = _read_inputs(model, cfg)  # every input is read and checked before anything is computed or written
    geo = _geometry(model, cfg, inputs, progress)
    layer, emotions, axes, pts = inputs["layer"], geo["emotions"], geo["axes"], geo["pts"]
    summary: dict[str, Any] = {
        "model": model.describe(),
        "judge": judge_name(judge),
        "config": cfg.to_dict(),
        "layer": layer,
        "emotions": emotions,
        "ratings": {e: list(geo["ratings"][e]) for e in emotions},
        "ratings_report": geo["report"],
        "fit": {
            "r2": axes.r2,
            "ridge_alpha": axes.ridge_alpha,
            "n_components": axes.n_components,
            "heldout": geo["heldout"],
        },
        "projection": {e: pts[i].tolist() for i, e in enumerate(emotions)},
        "circumplex": geo["circle"],
        "dropped": geo["dropped"],
    }
    if inputs["lexicon"] is not None:
        summary["lexicon"] = lexicon_check(model, axes, inputs["lexicon"], vocab_only=cfg.vocab_only)
    steer = _steering_setup(model, cfg, axes, geo["acts"], layer)
    summary["steering"] = _va_steering(model, cfg, axes, layer, steer, judge)
    probes: dict[str, Any] = {}
    if inputs["refusal_rows"] is not None:
        phrases = cfg.refusal_phrases or REFUSAL_PHRASES
        summary["refusal_phrases"] = list(phrases)
        probes["refusal"] = _refusal_probe(model, cfg, inputs["refusal_rows"], phrases, steer)
    if inputs["sycophancy_items"] is not None:
        probes["sycophancy"] = _sycophancy_probe(model, cfg, inputs["sycophancy_items"], steer)
    summary["probes"] = probes
    if probes:
        types = [t for _, t in inputs["refusal_rows"]] if inputs["refusal_rows"] is not None else None
        summary["behaviour"] = behaviour_verdicts(probes, types)
    _write_va(out_dir, cfg, inputs, geo, summary)
    return summary


VA_OUTPUTS = frozenset(
    {"vectors.safetensors", "text_activations.safetensors", "texts.json", "axes.json", "axes.safetensors"}
    | {"summary.json", "figures"}
)
"""The entries of a VA run directory (all written by one ``va`` run, as one swap)."""


def check_va_out(out_dir: str | Path) -> None:
    """Refuse (:class:`~circuits.core.artifacts.InputError` naming ``--out``) an ``out_dir`` that is a file,
    or an existing folder holding anything but a VA run's files: a VA run replaces its folder whole."""
    from circuits.core.artifacts import InputError
    from circuits.core.ownership import check_folder_target
    from circuits.runs.layout import foreign_entries, shown_names

    other = foreign_entries(check_folder_target(out_dir, "--out"), VA_OUTPUTS)
    if other:
        raise InputError(
            f"--out {out_dir}: holds files that are not a VA run's ({shown_names(other)}); a VA run replaces its folder "
            "whole, so give a new or empty folder, or an earlier VA run's"
        )


def _read_inputs(model: ModelHandle, cfg: VAConfig) -> dict[str, Any]:
    """The axes' layer and every input file of ``cfg``, read and checked (:class:`VAInputError`):
    ``{"layer", "rows", "file_ratings", "lexicon", "refusal_rows", "sycophancy_items"}``; ``rows``
    keeps at most ``cfg.limit`` texts per (first) label, in file order."""
    n_layers = model.arch.n_layers
    layer = cfg.layer if cfg.layer is not None else max(0, round(0.6 * n_layers) - 1)
    bad = [L for L in [layer, *(cfg.steer_layers or ())] if not 0 <= L < n_layers]
    if bad:
        raise VAInputError(
            f"VAConfig.layer / steer_layers: layer(s) {bad} out of range: {model.name} has layers 0-{n_layers - 1}"
        )
    rows = load_labelled_texts(cfg.texts)
    if not cfg.self_report and not cfg.ratings:
        raise VAInputError("give VA ratings (a CSV file) or self_report=True")
    file_ratings = None if cfg.self_report else load_va_ratings(cfg.ratings)
    _check_requested(cfg, sorted({l for _, ls in rows for l in ls} - {"neutral"}), file_ratings)
    lexicon = load_va_lexicon(cfg.lexicon) if cfg.lexicon else None
    refusal_rows = load_prompts(probe_file(cfg.refusal, "refusal_prompts")) if cfg.refusal else None
    sycophancy_items = load_sycophancy(probe_file(cfg.sycophancy, "sycophancy_items")) if cfg.sycophancy else None
    if cfg.probe_limit is not None:
        refusal_rows = spread(refusal_rows, cfg.probe_limit) if refusal_rows else refusal_rows
        sycophancy_items = spread(sycophancy_items, cfg.probe_limit) if sycophancy_items else sycophancy_items
    if cfg.limit is not None:  # at most `limit` texts per (first) label, in file order
        seen: dict[str, int] = {}
        rows = [
            r
            for r in rows
            if seen.setdefault(r[1][0], 0) < cfg.limit and not seen.__setitem__(r[1][0], seen[r[1][0]] + 1)
        ]
    return {
        "layer": layer,
        "rows": rows,
        "file_ratings": file_ratings,
        "lexicon": lexicon,
        "refusal_rows": refusal_rows,
        "sycophancy_items": sycophancy_items,
    }


SHIPPED = "shipped"
"""The value of ``refusal`` / ``sycophancy`` (``--refusal`` / ``--sycophancy``) naming the shipped set."""


def probe_file(value: str, shipped: str) -> str:
    """The probe set's path: the shipped file ``shipped`` (a :data:`~circuits.core.resources.DATA_FILES`
    key) for :data:`SHIPPED`, else ``value`` itself."""
    return str(data_path(shipped)) if value == SHIPPED else value


def spread(items: list[Any], limit: int) -> list[Any]:
    """At most ``limit`` of ``items``, evenly spaced over the list (so a file grouped by type or topic
    keeps every group), in file order."""
    if limit >= len(items):
        return list(items)
    return [items[i] for i in np.linspace(0, len(items) - 1, limit).round().astype(int)]


def _geometry(model: ModelHandle, cfg: VAConfig, inputs: dict[str, Any], progress: bool) -> dict[str, Any]:
    """Text activations, the ratings (from the file or self-reported), the emotion vectors, the VA axes at
    the layer, the emotions' projections on them and the circumplex check."""
    rows, layer = inputs["rows"], inputs["layer"]
    texts, labels = [t for t, _ in rows], [ls for _, ls in rows]
    acts = text_activations(model, texts, range(model.arch.n_layers), cfg.position, progress=progress)  # [n, L, d]
    have = sorted({l for ls in labels for l in ls} - {"neutral"})
    if cfg.self_report:
        wanted = list(cfg.emotions) if cfg.emotions else have
        ratings, report = self_report_va(model, wanted, cfg.valence_question, cfg.arousal_question)
    else:
        ratings, report = inputs["file_ratings"], {"source": cfg.ratings}
    _check_requested(cfg, have, ratings)
    emotions = [e for e in (cfg.emotions or have) if e in ratings and e in have]
    dropped = {
        "labels_without_ratings": [e for e in have if e not in ratings],
        "ratings_without_texts": sorted(set(ratings) - set(have) - {"neutral"}),
    }
    if len(emotions) < 3:
        why = ""
        if cfg.self_report:
            why = (
                f" ({report['n_unparsed']} of {2 * report['asked']} self-reported ratings were unparseable, "
                f"e.g. {[u['answer'] for u in report['unparsed'][:3]]})"
            )
        raise VAInputError(f"need >= 3 emotions with texts and ratings, have {emotions}{why}")
    emotions, vecs = emotion_vectors_from_texts(acts, labels, emotions)  # [E, L, d]
    y = np.array([ratings[e] for e in emotions])
    axes = fit_va_axes(vecs[:, layer], y, layer=layer, emotions=emotions)
    axes.fingerprint = model.fingerprint
    pts = axes.project(vecs[:, layer]).numpy()
    heldout = heldout_fit(vecs[:, layer], y, emotions) if len(emotions) >= 4 else None
    return {
        "heldout": heldout,
        "acts": acts,
        "ratings": ratings,
        "report": report,
        "emotions": emotions,
        "dropped": dropped,
        "vecs": vecs,
        "axes": axes,
        "pts": pts,
        "circle": circumplex(pts, emotions),
    }


def _steering_setup(model: ModelHandle, cfg: VAConfig, axes: Any, acts: Any, layer: int) -> dict[str, Any]:
    """What steering along the axes needs: the layers, the residual RMS at the axes' layer and the
    directions (valence, arousal and ``cfg.random_seeds`` random ones)."""
    steer_layers = list(cfg.steer_layers) if cfg.steer_layers is not None else [layer]
    rms = float(acts[:, layer].pow(2).mean(-1).sqrt().mean())
    directions = {"valence": axes.valence, "arousal": axes.arousal}
    directions |= {f"random{s}": r for s, r in enumerate(random_directions(model.arch.d_model, cfg.random_seeds))}
    return {"layers": steer_layers, "rms": rms, "directions": directions}


def _va_steering(
    model: ModelHandle, cfg: VAConfig, axes: Any, layer: int, steer: dict[str, Any], judge: Any
) -> list[dict[str, Any]]:
    """VA steering on neutral-prompt SEV test items: judged labels (``broken`` for replies the fluency
    check flags) and the reply's projection, per direction and strength."""
    from collections import Counter

    from circuits.core.generate import GenerationSettings, generate
    from circuits.core.sev import DEFAULT_TEST, PromptSettings, load_sev
    from circuits.judges.base import judged_labels
    from circuits.judges.fluency import default_fluency_check

    settings = PromptSettings()
    items = load_sev(DEFAULT_TEST, limit=cfg.steer_limit).items(neutral=True)
    prompts = [model.chat_ids(*settings.chat(None, it.user_text)) for it in items]
    gen = GenerationSettings(max_new_tokens=32)
    steering = []
    for name, axis in steer["directions"].items():
        for alpha in cfg.alphas:
            ivs = axis_steering(axis, steer["layers"], alpha, steer["rms"])
            replies = generate(model, prompts, gen, interventions=ivs, progress=False)
            proj = axes.project(text_activations(model, replies, [layer], "mean", progress=False)[:, 0]).mean(0)
            steering.append(
                {
                    "direction": name,
                    "alpha": alpha,
                    "judged": dict(Counter(judged_labels(judge, replies, default_fluency_check(model.name)))),
                    "valence_proj": float(proj[0]),
                    "arousal_proj": float(proj[1]),
                    "example": replies[0] if replies else "",
                }
            )
    return steering


def _conditions(cfg: VAConfig, steer: dict[str, Any]) -> list[tuple[str, float, list[Any]]]:
    """``(direction, alpha, interventions)`` per direction and strength; alpha 0 is the same unsteered
    condition for every direction, so it is listed (and measured) once, as direction ``"none"``."""
    out = [("none", 0.0, [])] if 0.0 in cfg.alphas else []
    for name, axis in steer["directions"].items():
        out += [(name, a, axis_steering(axis, steer["layers"], a, steer["rms"])) for a in cfg.alphas if a != 0.0]
    return out


def _per_direction(
    rows: list[dict[str, Any]], steer: dict[str, Any], alphas: tuple[float, ...]
) -> list[dict[str, Any]]:
    """The rows per direction in ``alphas`` order, the shared alpha-0 row copied under each direction's
    name, so every direction has a full curve."""
    by_key = {(r["direction"], r["alpha"]): r for r in rows}
    return [
        dict(by_key[("none", 0.0)], direction=name) if a == 0.0 else by_key[(name, a)]
        for name in steer["directions"]
        for a in alphas
    ]


def _refusal_probe(
    model: ModelHandle, cfg: VAConfig, refusal_rows: Any, phrases: Any, steer: dict[str, Any]
) -> list[dict[str, Any]]:
    """Per direction and strength: refusal rate (overall and per prompt type), per-prompt outcomes
    (``values``: 1 refused, 0 not; ``fluent``: the fluency check's verdict) and refusal-token logits."""
    from circuits.judges.fluency import default_fluency_check

    check = default_fluency_check(model.name)
    ps, types = [p for p, _ in refusal_rows], [t for _, t in refusal_rows]
    curve = []
    for n, a, ivs in tqdm(_conditions(cfg, steer), desc="refusal probe", disable=None):
        r = refusal_rates(model, ps, types, ivs, max_new_tokens=cfg.refusal_tokens, phrases=phrases)
        curve.append(
            {
                "direction": n,
                "alpha": a,
                "refusal_rate": r["overall"],
                "refusal_rate_by_type": r["by_type"],
                "n_by_type": r["n_by_type"],
                "values": [int(x) for x in r["refused"]],
                "fluent": [not b for b in check.broken(r["replies"])],
                "token_logits": refusal_token_logits(model, ps, ivs),
                "example": r["replies"][0] if r["replies"] else "",
            }
        )
    return _per_direction(curve, steer, cfg.alphas)


def _sycophancy_probe(model: ModelHandle, cfg: VAConfig, items: Any, steer: dict[str, Any]) -> list[dict[str, Any]]:
    """Per direction and strength: the mean matching-answer probability (``score``) and each item's
    (``values``)."""
    rows = []
    for n, a, ivs in tqdm(_conditions(cfg, steer), desc="sycophancy probe", disable=None):
        probs = sycophancy_probs(model, items, ivs)
        rows.append({"direction": n, "alpha": a, "score": float(np.mean(probs)), "values": probs})
    return _per_direction(rows, steer, cfg.alphas)


def behaviour_verdicts(probes: dict[str, Any], refusal_types: list[str] | None = None) -> dict[str, Any]:
    """The valence-arousal paper's behavioural claims judged on a run's probe rows
    (:func:`circuits.va.behaviour.trend_verdict`), with the curves and their intervals. The refusal claim
    reads the prompts typed ``harmful`` when the set is typed (all prompts otherwise); the refusal
    curves are also given for the fluent replies only."""
    from circuits.va.behaviour import TREND_RULE, curve_table, trend_verdict

    out: dict[str, Any] = {"rule": TREND_RULE}
    if "refusal" in probes:
        rows = probes["refusal"]
        keep = [i for i, t in enumerate(refusal_types or []) if t == "harmful"] or list(range(len(rows[0]["values"])))
        harmful = [dict(r, values=[r["values"][i] for i in keep]) for r in rows]
        fluent = [dict(r, values=[r["values"][i] for i in keep if r["fluent"][i]]) for r in rows]
        out["refusal"] = trend_verdict(harmful, "refusal") | {
            "prompts": "harmful" if refusal_types and "harmful" in refusal_types else "all",
            "curve": curve_table(harmful, binary=True),
            "fluent_curve": curve_table([r for r in fluent if r["values"]], binary=True),
        }
    if "sycophancy" in probes:
        rows = probes["sycophancy"]
        out["sycophancy"] = trend_verdict(rows, "sycophancy") | {"curve": curve_table(rows, binary=False)}
    return out


def _write_va(
    out_dir: str | Path, cfg: VAConfig, inputs: dict[str, Any], geo: dict[str, Any], summary: dict[str, Any]
) -> None:
    """The VA run directory, replaced only when complete: vectors, the axes' layer's text activations,
    texts, axes, figures and ``summary.json`` (gains ``"figures"``)."""
    from safetensors.torch import save_file

    layer, vecs, acts = inputs["layer"], geo["vecs"], geo["acts"]
    check_va_out(out_dir)  # again, just before the swap
    with staged_dir(out_dir) as out:  # the old results stay until the new ones are complete
        write_atomic(out / "vectors.safetensors", lambda p: save_file({"vectors": vecs.contiguous()}, str(p)))
        write_atomic(
            out / "text_activations.safetensors",  # the axes' layer only ([n_texts, d_model])
            lambda p: save_file({"activations": acts[:, layer].contiguous()}, str(p)),
        )
        write_json_atomic(
            out / "texts.json",
            {
                "layer": layer,
                "position": cfg.position,
                "emotions": geo["emotions"],
                "texts": [{"text": t, "labels": list(ls)} for t, ls in inputs["rows"]],
            },
        )
        geo["axes"].save(out / "axes")
        figures = va_figures(out, summary)
        summary["figures"] = [str(Path(out_dir) / Path(p).relative_to(out)) for p in figures]
        summary.update(provenance())
        write_json_atomic(out / "summary.json", summary)
