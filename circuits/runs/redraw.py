"""Figures of run directories: read what a run wrote, then draw (``emocircuits figures``; ``make figures``).
``discover`` itself draws from what it holds in memory (:func:`circuits.figures.discovery.discovery_figures`)."""

from __future__ import annotations

import shutil
from pathlib import Path

from circuits.core.ownership import owned
from circuits.runs import layout
from circuits.runs.rundir import Run


def figures_from_run(run_dir: str | Path) -> list[str]:
    """Redraw every discovery figure of a run directory from its files; returns the paths written."""
    from circuits.discovery.directions import pca_by_layer
    from circuits.figures.discovery import cross_context_cosines, discovery_figures

    run = Run(run_dir, check=False)
    summary = run.json(layout.SUMMARY_JSON, {})
    store = run.store()
    emotions = list(summary.get("config", {}).get("emotions", store.emotions))
    scores = run.scores()
    with owned(run.path, "--run"):
        return discovery_figures(
            run.path,
            emotions=emotions,
            pca=pca_by_layer(store, "mlp", emotions=emotions),
            evidence=run.json(layout.EVIDENCE_JSON, None),
            neurons=scores["neurons"],
            heads=scores["heads"],
            sweeps=run.sweeps(),
            influence=run.influence(emotions, scores["neurons"].shape[0]),
            circuits=list(run.circuits(emotions=emotions).values()),
            logit_lens=run.logit_lens(emotions),
            cosine=cross_context_cosines(store, emotions),
        )


def make_figures(discover: str | Path, va: str | Path | None = None, png_dir: str | Path | None = None) -> list[str]:
    """Draw every figure: the discovery run's (``<run>/figures/``), its ``evaluation.json``'s method
    accuracy bars when present, and the VA run's. Returns the paths written; PNGs are then copied into
    ``png_dir`` (when given) and the copies are returned instead of the originals."""
    from circuits.figures.evaluation import accuracy_bars
    from circuits.figures.va import va_figures

    run = Run(discover, check=False)
    with owned(run.path, "--run"):
        paths = figures_from_run(run.path)
        evaluation = run.evaluation
        if evaluation is not None:
            paths += accuracy_bars(evaluation, run.file(layout.FIGURES_DIR))
    if va is not None:
        with owned(va, "--va"):
            paths += va_figures(Path(va), Run(va, check=False).json(layout.SUMMARY_JSON, None))
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
