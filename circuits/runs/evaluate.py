"""The ``evaluate`` command as a library call: steer with a discovery run's artefacts and compare the
methods on the held-out SEV split (:func:`run_evaluation`)."""

from __future__ import annotations

import os
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Sequence

import torch

from circuits.core.artifacts import InputError, write_json_atomic, write_text_atomic
from circuits.core.emotions import check_emotions
from circuits.core.model import ModelHandle
from circuits.core.ownership import check_folder_target, owned
from circuits.core.provenance import provenance
from circuits.core.sev import DEFAULT_TEST, DEFAULT_TRAIN, PromptSettings, SEVDataset, load_sev
from circuits.runs import layout
from circuits.runs.report import write_run_report
from circuits.runs.rundir import Run
from circuits.steer.metrics import EvalConfig, evaluate_methods, method_table, strength_sweep, sweep_table


def method_factories(
    model: ModelHandle,
    run: Run | str | os.PathLike,
    cfg: EvalConfig,
    emotions: Sequence[str],
    *,
    null_seed: int | None = None,
    progress: bool = True,
) -> tuple[dict[str, Any], list[int] | None]:
    """``{method: (emotion, strength) -> interventions}`` for the steered methods of ``cfg.methods`` from the
    run's circuits, directions and Emotion Vectors, and the direction-steering layers (None without it).

    ``null_seed``: the random controls of equal norm instead (seeded): direction steering along random
    unit directions (one per layer and emotion); Emotion Vectors replaced by random vectors with each
    layer's EV norm; circuit modulation with the circuit's Delta-mu put on random units of the same number
    per layer (:func:`circuits.circuit.ablation_faithfulness.random_units`)."""
    from circuits.steer.methods import (
        circuit_modulation,
        default_direction_layers,
        direction_steering,
        emotion_vector_steering,
    )

    run = run if isinstance(run, Run) else Run(run, check=False)
    methods = cfg.methods
    factories: dict[str, Any] = {}  # method -> (emotion, strength) -> interventions
    layers = None
    g = torch.Generator().manual_seed(null_seed) if null_seed is not None else None
    if "circuit" in methods:
        circuits = run.circuits(model=model, emotions=emotions)
        if g is not None:
            circuits = {e: random_circuit(c, null_seed) for e, c in circuits.items()}
        factories["circuit"] = lambda e, s: circuit_modulation(circuits[e], model, lam=s, positions=cfg.positions)
    if "direction" in methods:
        dirs = run.directions(cfg.direction_source)
        if g is not None:
            noise = torch.randn(dirs.unit.shape, generator=g)
            dirs = replace(dirs, unit=noise / noise.norm(dim=-1, keepdim=True))
        layers = list(cfg.direction_layers) if cfg.direction_layers else default_direction_layers(model.arch.n_layers)
        factories["direction"] = lambda e, s: direction_steering(dirs, e, layers, s, model, cfg.positions)
    if "emotion_vector" in methods:
        ev, ev_emotions = run.emotion_vectors(model, progress=progress)
        if g is not None:
            noise = torch.randn(ev.shape, generator=g)
            ev = noise / noise.norm(dim=-1, keepdim=True) * ev.norm(dim=-1, keepdim=True)
        factories["emotion_vector"] = lambda e, s: emotion_vector_steering(
            ev, ev_emotions, {e: s}, positions=cfg.positions
        )
    return factories, layers


def random_circuit(circuit: Any, seed: int) -> Any:
    """``circuit`` with its units replaced by random ones (same number of neurons and heads per layer),
    each carrying the Delta-mu of the unit it replaces: a control of equal size and norm."""
    from circuits.circuit import LayerCircuit
    from circuits.circuit.ablation_faithfulness import random_units

    units = random_units(circuit, seed)
    layers = [
        LayerCircuit(
            lc.layer, units["neurons"][lc.layer], list(lc.neuron_scores), units["heads"][lc.layer], list(lc.head_scores)
        )
        for lc in circuit.layers
    ]
    return replace(circuit, layers=layers, meta={**circuit.meta, "random_control_seed": seed})


def run_evaluation(
    model: ModelHandle,
    run_dir: str | os.PathLike,
    cfg: EvalConfig | None = None,
    *,
    sev: SEVDataset | str | os.PathLike | None = None,
    out: str | os.PathLike | None = None,
    judge: Any = None,
    settings: PromptSettings | None = None,
    dev: SEVDataset | str | os.PathLike | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Evaluate ``cfg.methods`` with the circuits, directions and store of the discovery run ``run_dir``.

    ``dev``: the items of the strength sweep, when ``cfg`` gives strengths to sweep (default: the shipped
    train split, ``cfg.sweep_limit`` scenarios); the chosen strengths are used on ``sev`` and the
    sweep is reported under ``"strength_sweep"``.
    ``settings``: the prompts (default: the run's own, so that prompting is measured with the prompt the
    circuits were found with; runs from before placements existed read as the paper's).

    ``sev``: the held-out items (a dataset or a file; default the shipped test split); the report
    (``evaluation.json``, ``evaluation.csv``, ``accuracy.html``, ``report.md``) and every reply
    (``replies.jsonl``, a labelled file for ``emocircuits judge eval --by method``) go to ``out``
    (default: the run directory); ``judge``: any judge (default :data:`~circuits.judges.base.DEFAULT_JUDGE`). Emotion Vectors
    are computed from the run's store once and cached as ``emotion_vectors.safetensors``
    (``{"ev": [n_emotions, n_layers, d_model]}``, :data:`circuits.runs.layout.EMOTION_VECTORS`). Returns the
    result of :func:`circuits.steer.metrics.evaluate_methods`.
    """
    t_start = time.perf_counter()
    cfg = cfg or EvalConfig()
    bad = [L for L in cfg.direction_layers or () if not 0 <= L < model.arch.n_layers]
    if bad:
        raise InputError(
            f"EvalConfig.direction_layers (--direction-layers): layer(s) {bad} out of range: "
            f"{model.name} has layers 0-{model.arch.n_layers - 1}"
        )
    run = Run(run_dir)
    target = check_folder_target(out or run.path, "--out" if out is not None else "--run")
    with owned(target, "--out"):  # before anything is written (the cached Emotion Vectors included)
        emotions = check_emotions(cfg.emotions)
        factories, layers = method_factories(model, run, cfg, emotions, progress=progress)
        cfg = replace(cfg, emotions=tuple(emotions), direction_layers=tuple(layers) if layers is not None else None)
        data = sev if isinstance(sev, SEVDataset) else load_sev(sev or DEFAULT_TEST)
        settings = settings or run.prompts
        sweep = None
        t0 = time.perf_counter()
        if any(cfg.grid(m) for m in factories):
            dev = dev if isinstance(dev, SEVDataset) else load_sev(dev or DEFAULT_TRAIN)
            sweep = strength_sweep(model, dev, factories, cfg, settings, judge, progress=progress)
            for method, t in sweep["methods"].items():
                cfg = cfg.with_strength(method, t["chosen"])
        t_sweep = time.perf_counter()
        ivs = {m: (lambda e, m=m: factories[m](e, cfg.strength(m))) for m in factories}
        replies: list[dict[str, Any]] = []
        result = evaluate_methods(
            model, data, ivs, cfg, settings=settings, judge=judge, progress=progress, record=replies
        )
        if sweep is not None:
            result["strength_sweep"] = sweep
        # set-up: loading the circuits and directions, computing (once) or reading the Emotion Vectors
        result["timings_s"] = {
            "setup": t0 - t_start,
            "strength_sweep": t_sweep - t0,
            "evaluation": time.perf_counter() - t_sweep,
        }
        result.update(provenance())
        write_evaluation(result, target)
        layout.write_jsonl(Path(target) / layout.REPLIES_JSONL, replies)
        if out is None or Path(out).resolve() == run.path.resolve():
            write_run_report(run.path)  # the run's report.html now shows the evaluation
    return result


def write_evaluation(result: dict[str, Any], out_dir: str | Path) -> list[Path]:
    """``evaluation.json``, ``evaluation.csv``, ``accuracy.html`` (plotly) and ``report.md``, under the
    folder's writer lock (:func:`circuits.core.ownership.owned`)."""
    with owned(check_folder_target(out_dir, "--out")):
        return _write_evaluation(result, Path(out_dir))


def _write_evaluation(result: dict[str, Any], out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = [write_json_atomic(out / layout.EVALUATION_JSON, result)]
    rows = []
    for name, m in result["methods"].items():
        rows.append([name, "all", m["accuracy"], m["perplexity"], m["distinct_2"]])
        rows += [[name, e, a, "", ""] for e, a in m["per_emotion"].items()]
    paths.append(
        layout.write_csv(
            out / layout.EVALUATION_CSV, ["method", "emotion", "accuracy", "perplexity", "distinct_2"], rows
        )
    )
    try:
        import plotly.graph_objects as go

        from circuits.figures.render import plotly_html

        fig = go.Figure()
        for name, m in result["methods"].items():
            fig.add_trace(go.Bar(name=name, x=list(m["per_emotion"]), y=list(m["per_emotion"].values())))
        fig.update_layout(
            barmode="group",
            title="Accuracy per emotion and method (judged as the target emotion)",
            yaxis_title="accuracy",
            yaxis_range=[0, 1],
        )
        paths.append(write_text_atomic(out / layout.ACCURACY_HTML, plotly_html(fig)))
    except ImportError:  # pragma: no cover
        pass
    md = [
        f"# Steering evaluation: {result['model']['name']}",
        "",
        f"Test split `{result['dataset']['path']}` ({result['dataset']['n_scenarios']} scenarios x 3 valences x "
        f"{len(result['config']['emotions'])} emotions), greedy decoding, judge "
        f"`{result.get('judge', 'lexicon')}`; steering positions `{result['config'].get('positions', 'paper')}`.",
        "",
        f"Emotion instruction (prompting, and the prompt of the discovery run): "
        f"{PromptSettings.from_dict(result.get('prompts') or {}).describe()}.",
        "",
        "```",
        method_table(result),
        "```",
        "",
    ]
    if result.get("strength_sweep"):
        md += [
            "Strengths were chosen on the dev items (the train split), not on the test split:",
            "",
            "```",
            sweep_table(result["strength_sweep"]),
            "```",
            "",
        ]
    md += ["## Example generations", ""]
    for name, m in result["methods"].items():
        md.append(f"### {name}")
        md.append("")
        for ex in m["examples"]:
            md.append(f"- **{ex['emotion']}** ({ex['valence']}, judged {ex['judged']}): {ex['reply']}")
        md.append("")
    paths.append(write_text_atomic(out / layout.REPORT_MD, "\n".join(md)))
    return paths
