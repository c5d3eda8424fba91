"""`emocircuits figures` end to end on a small toy discovery run, an evaluation file and a VA run;
the cross-context cosine heatmap against the evidence discover stores."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from circuits.core.emotions import EMOTIONS
from circuits.core.sev import load_sev
from circuits.runs.discover import DiscoverConfig, discover

ROOT = Path(__file__).resolve().parents[2]

DISCOVERY_FIGURES = (
    "pca_by_layer",
    "cross_context_cosine",
    "probe_accuracy",
    "ablation_long_tail",
    "component_long_tail",
    "influence_heatmap",
    "circuit_allocation",
    "circuit_overlap_neurons",
    "circuit_overlap_heads",
    "logit_lens",
)


@pytest.fixture(scope="module")
def toy():
    from circuits.core.model import load_model

    return load_model("toy")


@pytest.fixture(scope="module")
def runs(toy, tmp_path_factory):
    """A small discovery run (no judged generations, no figures: `emocircuits figures` must draw them), a
    hand-made evaluation.json in the schema ``emocircuits evaluate`` writes, and a small VA run."""
    from circuits.runs import valence_arousal as va

    root = tmp_path_factory.mktemp("figs")
    run = root / "run"
    cfg = DiscoverConfig(
        limit=4,
        sweep_ks=(1, 4),
        sweep_seeds=1,
        sweep_rows=2,
        reference_head_rows=1,
        influence_rows=4,
        alphas=(0.1, 0.5),
        generation_rows=0,
        figures=False,
    )
    discover(toy, load_sev(), run, cfg, progress=False)
    methods = {}
    for name, acc in (("neutral", 0.1), ("direction", 0.9), ("circuit", 0.95)):
        methods[name] = {
            "accuracy": acc,
            "per_emotion": {e: acc for e in EMOTIONS},
            "per_valence": {v: acc for v in ("positive", "neutral", "negative")},
            "perplexity": 2.0,
            "distinct_2": 0.2,
            "n": 36,
            "judged": {},
            "examples": [],
        }
    (run / "evaluation.json").write_text(json.dumps({"methods": methods}))
    va_run = root / "va"
    va.run_va(toy, va_run, va.VAConfig(limit=4, alphas=(-2.0, 2.0), steer_limit=1, random_seeds=1), progress=False)
    shutil.rmtree(va_run / "figures", ignore_errors=True)
    return run, va_run


def test_make_figures_regenerates_every_figure(runs, tmp_path):
    run, va_run = runs
    png_dir = tmp_path / "png"
    committed = {p.name: p.stat().st_mtime_ns for p in (ROOT / "figures").glob("*.png")}
    env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "circuits",
            "figures",
            "--run",
            str(run),
            "--va",
            str(va_run),
            "--png-dir",
            str(png_dir),
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    printed = res.stdout.splitlines()
    expected = [run / "figures" / f"{n}.html" for n in (*DISCOVERY_FIGURES, "method_accuracy")]
    expected += [va_run / "figures" / f"{n}.html" for n in ("va_circle", "va_steering")]
    for p in expected:
        assert p.exists() and p.stat().st_size > 0, p
        assert str(p) in printed, p
    html = (run / "figures" / "cross_context_cosine.html").read_text()
    assert '"type":"heatmap"' in html.replace(" ", "")
    # PNGs (drawn when matplotlib or kaleido with a browser is installed) go to --png-dir only
    pngs = [tmp_path / p for p in printed if p.endswith(".png")]  # relative to cwd when under it
    assert all(p.parent == png_dir and p.stat().st_size > 0 for p in pngs), pngs
    try:
        import matplotlib  # noqa: F401

        assert {p.stem for p in pngs} >= {Path(p).stem for p in expected}
    except ImportError:
        pass
    assert {p.name: p.stat().st_mtime_ns for p in (ROOT / "figures").glob("*.png")} == committed


def test_cosine_heatmap_cells_match_the_stored_evidence(runs):
    """The heatmap's per-emotion cells (recomputed from the store) average to the means discover
    stored; columns are a0, m0, a1, m1, ...; without a store the means alone are drawn."""
    from circuits.discovery.store import ActivationStore
    from circuits.figures.discovery import cosine_heatmap, cross_context_cosines

    run, _ = runs
    evidence = json.loads((run / "directions_evidence.json").read_text())
    emotions = list(EMOTIONS)
    n_layers = len(evidence["cosine_by_theme"][0])
    cosine = cross_context_cosines(ActivationStore.load(run / "store"), emotions)
    assert set(cosine) == {"theme", "valence"} and cosine["theme"].shape == (2, n_layers, len(emotions))
    fig, height = cosine_heatmap(emotions, evidence, cosine, n_layers)
    heat = [t for t in fig.data if t.type == "heatmap"]
    assert len(heat) == 2 and height > 0
    for t, key in zip(heat, ("theme", "valence")):
        z = np.asarray(t.z, dtype=float)
        assert list(t.y) == [*emotions, "mean"] and list(t.x)[:3] == ["a0", "m0", "a1"]
        assert z.shape == (len(emotions) + 1, 2 * n_layers) and (t.zmin, t.zmax) == (-1, 1)
        stored = np.asarray(evidence[f"cosine_by_{key}"])  # [read point, layer]
        np.testing.assert_allclose(z[-1], stored.T.reshape(-1), atol=1e-5)
        np.testing.assert_allclose(z[:-1].mean(0), z[-1], atol=1e-6)
        assert len(t.text) == z.shape[0] and all(s for row in t.text for s in row)
    fig, _ = cosine_heatmap(emotions, evidence, None, n_layers)
    assert [list(t.y) for t in fig.data] == [["mean"], ["mean"]]


def test_dose_response_figure_draws_each_series_once_and_drops_absent_metrics():
    """The one dose-response builder: per method a line of its points, a dotted mean of its random
    controls inside a min-max band; prompting and neutral flat across the strengths; a metric no
    method has (perplexity here) gets no panel; the perplexity axis is logarithmic when present."""
    from circuits.figures.dose_curves import dose_response_figure

    def pt(s, acc, score, ppl=None):
        return {"strength": s, "accuracy": acc, "emotion_score": score, "perplexity": ppl}

    ctrl = [
        dict(pt(s, 0.1, 0.2), lo={"accuracy": 0.0, "emotion_score": 0.1}, hi={"accuracy": 0.2, "emotion_score": 0.3})
        for s in (1.0, 4.0)
    ]
    d = {
        "reference": {"prompting": pt(None, 0.75, 0.5), "neutral": pt(None, 0.125, 0.25)},
        "methods": {"direction": {"points": [pt(1.0, 0.25, 0.5), pt(4.0, 0.5, 0.75)], "control": ctrl}},
    }
    fig = dose_response_figure(d, title="t")
    assert [a.text for a in fig.layout.annotations] == ["accuracy", "emotion score"]
    by_name = {}
    for tr in fig.data:
        by_name.setdefault(tr.name, []).append(tr)
    assert [list(t.y) for t in by_name["direction"]] == [[0.25, 0.5], [0.5, 0.75]]
    assert [list(t.y) for t in by_name["direction random control (mean)"]] == [[0.1, 0.1], [0.2, 0.2]]
    assert [(list(t.x), list(t.y)) for t in by_name["prompting"]] == [
        ([1.0, 4.0], [0.75, 0.75]),
        ([1.0, 4.0], [0.5, 0.5]),
    ]
    assert fig.layout.title.text == "t"

    for p in d["methods"]["direction"]["points"]:
        p["perplexity"] = 3.0
    fig = dose_response_figure(d)
    assert fig.layout.yaxis3.type == "log" and fig.layout.yaxis.type != "log"
