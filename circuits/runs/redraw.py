"""Figures of run directories: read what a run wrote, then draw (``emocircuits figures``; ``make figures``).
``discover`` itself draws from what it holds in memory (:func:`circuits.figures.discovery.discovery_figures`)."""

from __future__ import annotations

import shutil
from pathlib import Path

from circuits.runs import layout


def figures_from_run(run_dir: str | Path) -> list[str]:
    """Redraw every discovery figure of a run directory from its files; returns the paths written."""
    from safetensors.torch import load_file

    from circuits.circuit import load_circuits
    from circuits.discovery.directions import pca_by_layer
    from circuits.discovery.store import ActivationStore
    from circuits.figures.discovery import cross_context_cosines, discovery_figures

    run = Path(run_dir)
    summary = layout.read_json(run, layout.SUMMARY_JSON, {})
    store = ActivationStore.load(run / layout.STORE_DIR)
    emotions = list(summary.get("config", {}).get("emotions", store.emotions))
    scores = load_file(str(run / layout.SCORES))
    return discovery_figures(
        run, emotions=emotions, pca=pca_by_layer(store, "mlp", emotions=emotions),
        evidence=layout.read_json(run, layout.EVIDENCE_JSON), neurons=scores["neurons"], heads=scores["heads"],
        sweeps=layout.read_sweeps(run), influence=layout.read_influence(run, emotions, scores["neurons"].shape[0]),
        circuits=list(load_circuits(run / layout.CIRCUITS_DIR, emotions=emotions).values()),
        logit_lens=layout.read_logit_lens(run, emotions), cosine=cross_context_cosines(store, emotions))


def make_figures(discover: str | Path, va: str | Path | None = None, png_dir: str | Path | None = None) -> list[str]:
    """Draw every figure: the discovery run's (``<run>/figures/``), its ``evaluation.json``'s method
    accuracy bars when present, and the VA run's. Returns the paths written; PNGs are then copied into
    ``png_dir`` (when given) and the copies are returned instead of the originals."""
    from circuits.figures.evaluation import accuracy_bars
    from circuits.figures.va import va_figures

    run = Path(discover)
    paths = figures_from_run(run)
    evaluation = layout.read_json(run, layout.EVALUATION_JSON)
    if evaluation is not None:
        paths += accuracy_bars(evaluation, run / layout.FIGURES_DIR)
    if va is not None:
        paths += va_figures(Path(va), layout.read_json(va, layout.SUMMARY_JSON))
    if png_dir is None:
        return paths
    png_dir = Path(png_dir)
    png_dir.mkdir(parents=True, exist_ok=True)
    out = []
    for p in paths:
        if p.endswith(".png"):
            dest = png_dir / Path(p).name
            shutil.copy(p, dest)
            out.append(str(dest))
        else:
            out.append(p)
    return out
