"""Figures of run directories: read what a run wrote, then draw (``emocircuits figures``; ``make figures``).
``discover`` itself draws from what it holds in memory (:func:`circuits.figures.discovery.discovery_figures`).

Every input is checked before any figure is drawn, and each run's ``figures/`` folder is replaced as one
swap (:func:`circuits.core.artifacts.staged_dir`): a failed or killed redraw leaves the old figures."""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path
from typing import Any, Callable, Iterator

from circuits.core.artifacts import InputError, write_atomic
from circuits.core.ownership import check_folder_target, owned
from circuits.runs import layout
from circuits.runs.report import open_run
from circuits.runs.rundir import Run


@contextlib.contextmanager
def staged_figures(folder: str | os.PathLike, flag: str) -> Iterator[tuple[Path, Callable[[list[str]], list[str]]]]:
    """``folder/figures`` as one swap: yields ``(draw_dir, finish)``; a drawing function that writes into
    ``draw_dir/figures`` (as the figure modules do) draws into the staged folder, and ``finish(paths)``
    moves what it drew into place there and returns the paths the figures will have once swapped in."""
    from circuits.core.artifacts import staged_dir

    final = Path(folder) / layout.FIGURES_DIR
    with staged_dir(final, flag=flag) as tmp:
        draw = tmp / ".draw"

        def finish(paths: list[str]) -> list[str]:
            out = []
            for p in paths:
                p = Path(p)
                if p.parent != tmp:
                    os.replace(p, tmp / p.name)
                out.append(str(final / p.name))
            shutil.rmtree(draw, ignore_errors=True)
            return out

        yield draw, finish


def _read_run(run: Run) -> dict[str, Any]:
    """Everything the discovery figures of ``run`` are drawn from (read before anything is drawn)."""
    from circuits.discovery.directions import pca_by_layer
    from circuits.figures.discovery import cross_context_cosines

    summary = run.json(layout.SUMMARY_JSON, {})
    store = run.store()
    emotions = list(summary.get("config", {}).get("emotions", store.emotions))
    scores = run.scores()
    return dict(
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


def figures_from_run(run_dir: str | Path) -> list[str]:
    """Redraw every discovery figure of a run directory from its files, as one swap of ``figures/``;
    returns the paths written."""
    from circuits.figures.discovery import discovery_figures

    run = Run(run_dir, check=False)
    data = _read_run(run)
    with owned(run.path, "--run"), staged_figures(run.path, "--run") as (draw, finish):
        return finish(discovery_figures(draw, **data))


def check_va_run(va: str | Path) -> dict[str, Any]:
    """The ``summary.json`` of the VA run ``va`` (``--va``); :class:`InputError` naming it when it is not
    one."""
    path = Path(va)
    if not path.is_dir():
        raise InputError(f"--va {va}: no such VA run directory; make one with `emocircuits va --out {va}`")
    summary = Run(path, check=False).json(layout.SUMMARY_JSON, None)
    if not isinstance(summary, dict) or "circumplex" not in summary or "projection" not in summary:
        raise InputError(
            f"--va {va}: not a VA run (no {layout.SUMMARY_JSON} with a circumplex and projection); "
            f"make one with `emocircuits va --out {va}`"
        )
    return summary


def make_figures(discover: str | Path, va: str | Path | None = None, png_dir: str | Path | None = None) -> list[str]:
    """Draw every figure: the discovery run's (``<run>/figures/``), its evaluation's method accuracy bars
    when it has one, and the VA run's (``<va>/figures/``). Every input (``--run``, ``--va``,
    ``--png-dir``) is checked and read first; each ``figures/`` folder is then replaced as one swap.
    Returns the paths written; PNGs are then copied into ``png_dir`` (when given, each atomically) and
    the copies are returned instead of the originals."""
    from circuits.figures.discovery import discovery_figures
    from circuits.figures.evaluation import accuracy_bars
    from circuits.figures.va import va_figures

    run = open_run(discover)
    va_summary = check_va_run(va) if va is not None else None
    if png_dir is not None:
        check_folder_target(png_dir, "--png-dir")
    data = _read_run(run)
    evaluation = run.evaluation
    with contextlib.ExitStack() as stack:
        stack.enter_context(owned(run.path, "--run"))
        draw, finish = stack.enter_context(staged_figures(run.path, "--run"))
        drawn = discovery_figures(draw, **data)
        if evaluation is not None:
            drawn += accuracy_bars(evaluation, draw / layout.FIGURES_DIR)
        paths = finish(drawn)
        if va is not None:
            stack.enter_context(owned(va, "--va"))
            va_draw, va_finish = stack.enter_context(staged_figures(va, "--va"))
            paths += va_finish(va_figures(va_draw, va_summary))
    if png_dir is None:
        return paths
    png_dir = Path(png_dir)
    png_dir.mkdir(parents=True, exist_ok=True)
    out = []
    for p in paths:
        if p.endswith(".png"):
            dest = png_dir / Path(p).name
            write_atomic(dest, lambda tmp, src=p: shutil.copyfile(src, tmp))
            out.append(str(dest))
        else:
            out.append(p)
    return out
