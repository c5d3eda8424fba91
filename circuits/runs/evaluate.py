"""The ``evaluate`` command as a library call: steer with a discovery run's artefacts and compare the
methods on the held-out SEV split (:func:`run_evaluation`)."""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Sequence

import torch

from circuits.core.artifacts import InputError, staged_dir, write_atomic, write_json_atomic, write_text_atomic
from circuits.core.emotions import check_emotions
from circuits.core.model import ModelHandle
from circuits.core.ownership import canonical, check_folder_target, owned
from circuits.core.provenance import provenance
from circuits.core.sev import DEFAULT_TEST, DEFAULT_TRAIN, PromptSettings, SEVDataset, load_sev
from circuits.runs import layout
from circuits.runs.layout import EVALUATION_DIR, EVALUATION_FILES
from circuits.runs.report import write_run_report
from circuits.runs.rundir import Run
from circuits.steer.metrics import EvalConfig, evaluate_methods, method_table, strength_sweep, sweep_table

STEERED = ("circuit", "direction", "emotion_vector")
"""The methods that steer with the run's artefacts (the others: ``prompting``, ``neutral``)."""


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
        ev, ev_emotions = cached_emotion_vectors(run, model, progress=progress)
        if g is not None:
            noise = torch.randn(ev.shape, generator=g)
            ev = noise / noise.norm(dim=-1, keepdim=True) * ev.norm(dim=-1, keepdim=True)
        factories["emotion_vector"] = lambda e, s: emotion_vector_steering(
            ev, ev_emotions, {e: s}, positions=cfg.positions
        )
    return factories, layers


def cached_emotion_vectors(run: Run, model: ModelHandle, progress: bool = True) -> tuple[Any, list[str]]:
    """The run's Emotion Vectors and their emotions: read from ``emotion_vectors.safetensors``, or computed
    from the run's store and cached there, under the run's writer lock, so that the cache never lands in
    a run another process is rewriting (when one is, the vectors are used without being cached)."""
    from safetensors.torch import save_file

    from circuits.steer.methods import emotion_vectors

    if run.has(layout.EMOTION_VECTORS):
        return run.emotion_vectors(model, progress=progress)
    with contextlib.ExitStack() as stack:
        try:
            stack.enter_context(owned(run.path, "--run"))
            locked = True
        except InputError:
            locked = False
        store = run.store(model)
        ev = emotion_vectors(model, store, progress=progress)
        if locked:
            write_atomic(run.file(layout.EMOTION_VECTORS), lambda p: save_file({"ev": ev.contiguous()}, str(p)))
    return ev, list(store.emotions)


def evaluation_target(run: Run, out: str | os.PathLike | None) -> Path:
    """Where an evaluation of ``run`` goes: ``out``, or ``RUN/evaluation/`` when ``out`` is None or names
    the run itself. The folder is replaced whole, so one that exists must hold nothing but an earlier
    evaluation's files (:data:`~circuits.runs.layout.EVALUATION_FILES`): :class:`InputError` naming the
    flag and listing what else it holds, and for ``out`` naming a file."""
    if out is None or canonical(out) == canonical(run.path):
        target, flag = run.path / EVALUATION_DIR, "--run"
    else:
        target, flag = Path(out), "--out"
    check_folder_target(target, flag)
    check_evaluation_folder(target, flag)
    return target


def check_evaluation_folder(folder: str | os.PathLike, flag: str = "--out") -> None:
    """:class:`InputError` when the existing folder ``folder`` holds anything but evaluation files (and the
    hidden names of atomic writes and locks): writing an evaluation replaces the folder whole."""
    layout.check_own_folder(Path(folder), EVALUATION_FILES, flag, "evaluation")


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
    (``replies.jsonl``, a labelled file for ``emocircuits judge eval --by method``) go to the folder ``out``
    (default, or ``out`` naming the run: the run's ``evaluation/`` folder), written as one swap
    (:func:`write_evaluation`): a failed or killed evaluation leaves the earlier one complete. Every check
    (the run, ``out``, the SEV files, the circuits and directions) runs before anything is written.
    ``judge``: any judge (default: the model's :func:`~circuits.judges.base.recommended_judge`, the
    lexicon for the toy model). Emotion Vectors are computed from the run's store once and cached as ``emotion_vectors.safetensors``
    (``{"ev": [n_emotions, n_layers, d_model]}``, :data:`circuits.runs.layout.EMOTION_VECTORS`;
    :func:`cached_emotion_vectors`). Returns the result of :func:`circuits.steer.metrics.evaluate_methods`.
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
    target = evaluation_target(run, out)
    into_run = target == run.path / EVALUATION_DIR
    with owned(run.path if into_run else target, "--run" if into_run else "--out"):
        emotions = check_emotions(cfg.emotions)
        data = sev if isinstance(sev, SEVDataset) else load_sev(sev or DEFAULT_TEST)
        if any(cfg.grid(m) for m in cfg.methods if m in STEERED):
            dev = dev if isinstance(dev, SEVDataset) else load_sev(dev or DEFAULT_TRAIN)
        # last of the checks: the circuits, directions, store; only then the Emotion Vectors' cache
        factories, layers = method_factories(model, run, cfg, emotions, progress=progress)
        cfg = replace(cfg, emotions=tuple(emotions), direction_layers=tuple(layers) if layers is not None else None)
        settings = settings or run.prompts
        sweep = None
        t0 = time.perf_counter()
        if any(cfg.grid(m) for m in factories):
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
        write_evaluation(result, target, replies=replies, flag="--run" if into_run else "--out")
        if into_run:
            write_run_report(run.path)  # the run's report.html now shows the evaluation
    return result


def write_evaluation(
    result: dict[str, Any],
    out_dir: str | Path,
    replies: Sequence[dict[str, Any]] | None = None,
    flag: str = "--out",
) -> list[Path]:
    """``evaluation.json``, ``evaluation.csv``, ``accuracy.html`` (plotly), ``report.md`` and, with
    ``replies``, ``replies.jsonl``, as one swap of the folder ``out_dir``
    (:func:`circuits.core.artifacts.staged_dir`: the folder is replaced whole once every file is written,
    under its writer lock); an existing ``out_dir`` holding other files is refused
    (:func:`check_evaluation_folder`). Returns the paths written."""
    check_folder_target(out_dir, flag)
    check_evaluation_folder(out_dir, flag)
    final = Path(out_dir)
    with staged_dir(final, flag=flag) as tmp:
        paths = _write_evaluation(result, tmp)
        if replies is not None:
            paths.append(layout.write_jsonl(tmp / layout.REPLIES_JSONL, list(replies)))
    return [final / p.name for p in paths]


def fluency_note(fluency: dict[str, Any] | None) -> str:
    """One sentence saying how accuracy was counted: fluent (with the check's reference model) or raw."""
    if fluency is None:
        return "Accuracy is raw: no fluency check ran (an evaluation from before it, or one run without it)."
    ref = fluency.get("reference")
    how = f"text signals and the mean log-probability under `{ref}`" if ref else "text signals only"
    return (
        "**fluent** accuracy (the headline) counts replies the fluency check flags as broken as misses "
        f"({how}); **raw** is the judge's verdict alone; **broken** is the share flagged."
    )


def _write_evaluation(result: dict[str, Any], out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = [write_json_atomic(out / layout.EVALUATION_JSON, result)]
    rows = []
    for name, m in result["methods"].items():
        raw, broken = m.get("raw_accuracy", ""), m.get("broken_share", "")
        rows.append([name, "all", m["accuracy"], raw, broken, m["perplexity"], m["distinct_2"]])
        rows += [[name, e, a, "", "", "", ""] for e, a in m["per_emotion"].items()]
    header = ["method", "emotion", "accuracy", "raw_accuracy", "broken_share", "perplexity", "distinct_2"]
    paths.append(layout.write_csv(out / layout.EVALUATION_CSV, header, rows))
    try:
        from circuits.figures.evaluation import accuracy_figure
        from circuits.figures.render import plotly_html

        methods = result["methods"]
        fig = accuracy_figure(methods, list(result["config"]["emotions"]), result.get("fluency") is not None)
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
        fluency_note(result.get("fluency")),
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
