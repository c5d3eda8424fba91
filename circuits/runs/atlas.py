"""``atlas``: one record per (model, emotion) linking what the workbench found about that emotion, and a
cross-method agreement table, written as ``atlas.json`` and ``atlas.html`` in the run directory.

    emocircuits atlas --model smollm2-135m --run runs/smol-full [--va runs/va]

Per emotion: the SEV direction (best probe layer, probe accuracy there against its permuted-label null,
cross-context cosine), the emotion-concept direction when the run has one (``emocircuits concepts``),
the Emotion Vector (norm per layer), the VA coordinates from a ``va`` run of the same model, when given
(the emotion's text centroid on the run's VA axes, the circle of the VA figure, next to its rating, and
the projection of the unit SEV direction on the same axes), the circuit (size, Delta-mu write norm, faithfulness when
measured) and provenance (model fingerprint, dataset hash, prompt settings, judge, package version).
Agreement per layer: cosines between the SEV direction (resid_post), the Emotion Vector (attention
output) and the circuit's residual write (the sum of its units' Delta-mu writes entering the residual
stream at that layer); and the circuits' neuron and head overlap (Jaccard) across emotions.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any, Sequence

import torch

from circuits.core.artifacts import write_json_atomic, write_text_atomic
from circuits.core.model import ModelHandle
from circuits.core.ownership import owned
from circuits.runs import layout

ATLAS_JSON = "atlas.json"
ATLAS_HTML = "atlas.html"


def _cos(a: torch.Tensor, b: torch.Tensor) -> float | None:
    na, nb = float(a.norm()), float(b.norm())
    return None if na == 0 or nb == 0 else float(a @ b) / (na * nb)


def circuit_layer_writes(circuit: Any, model: ModelHandle) -> torch.Tensor:
    """``[n_layers, d_model]``: per layer, the sum of the circuit's Delta-mu writes into the residual stream
    (heads and neurons of that layer), from :func:`circuits.interop.controlvector.circuit_unit_writes`."""
    from circuits.interop.controlvector import circuit_unit_writes

    units = circuit_unit_writes(circuit, model)
    out = torch.zeros(model.arch.n_layers, model.arch.d_model)
    for key, w in units.items():
        out[int(key[1:].split(".")[0])] += w
    return out


def _load_va(model: ModelHandle, va_dir: Path) -> tuple[Any, dict[str, Any]]:
    """The VA axes and summary of a ``va`` run, refused (naming the file) when they are missing or were
    fitted on another model."""
    from circuits.core.artifacts import InputError
    from circuits.core.readers import read_json
    from circuits.va.subspace import VAAxes

    axes_json, summary_json = va_dir / "axes.json", va_dir / "summary.json"
    for f in (axes_json, summary_json):
        if not f.is_file():
            raise InputError(f"{f}: not found; --va expects the output directory of `emocircuits va`")
    axes = VAAxes.load(va_dir / "axes")
    summary = read_json(summary_json, what="VA summary file", allow_nan=True)
    if not isinstance(summary.get("model", {}), dict):
        raise InputError(f"{summary_json}: field 'model': expected an object naming the model")
    where, fp = (
        (axes_json, axes.fingerprint)
        if axes.fingerprint
        else (summary_json, (summary.get("model") or {}).get("fingerprint"))
    )
    if fp != model.fingerprint:
        raise InputError(
            f"{where}: VA axes fitted on a model with fingerprint {fp}, not on {model.name!r} "
            f"({model.fingerprint}); run `emocircuits va --model {model.name}` first"
        )
    if int(axes.valence.shape[0]) != model.arch.d_model or not 0 <= axes.layer < model.arch.n_layers:
        raise InputError(
            f"{axes_json}: axes of size {int(axes.valence.shape[0])} at layer {axes.layer} do not fit {model.name!r} "
            f"(d_model {model.arch.d_model}, {model.arch.n_layers} layers)"
        )
    return axes, summary


def build_atlas(
    model: ModelHandle, run_dir: str | Path, va_dir: str | Path | None = None, progress: bool = True
) -> dict[str, Any]:
    """The atlas of a discovery run (see the module docstring): ``{"model", "provenance", "emotions":
    {emotion: record}, "agreement": {"per_layer": {...}, "overlap": {...}}}``."""
    import circuits
    from circuits.circuit import overlap
    from circuits.discovery.concept_vectors import CONCEPT_DIRECTIONS
    from circuits.runs.rundir import Run

    run = Run(run_dir)
    axes, va_summary = _load_va(model, Path(va_dir)) if va_dir is not None else (None, {})
    summary = run.summary
    evidence = run.evidence
    dirs = run.directions()
    concept = run.directions("concept") if run.has_concept_directions() else None
    circuits_ = run.circuits(model=model, emotions=list(dirs.emotions))
    ev, ev_emotions = run.emotion_vectors(model, progress=progress)
    probe = evidence["probe_accuracy"]["mlp"]
    null = (evidence.get("null") or {}).get("probe_accuracy", {}).get("mlp")
    cos_theme = evidence["cosine_by_theme"][1]
    best = int(torch.tensor(probe).argmax())
    L = model.arch.n_layers
    provenance = {
        "model": model.describe(),
        "dataset": summary["dataset"],
        "prompts": summary["prompts"],
        "judge": summary.get("judge"),
        "rows": summary["rows"],
        "package": f"emotion-circuits {circuits.__version__}",
        "run": str(run.path),
        "va_run": None if va_dir is None else str(va_dir),
    }
    records: dict[str, Any] = {}
    per_layer: dict[str, Any] = {}
    for e in dirs.emotions:
        i = dirs.emotions.index(e)
        sev = dirs.unit[1, :, i]  # [L, d] resid_post
        evec = ev[list(ev_emotions).index(e)]  # [L, d]
        c = circuits_[e]
        writes = circuit_layer_writes(c, model)
        rec: dict[str, Any] = {
            "emotion": e,
            "direction": {
                "source": "SEV (group-centred mean difference)",
                "file": "directions.safetensors",
                "best_layer": best,
                "probe_accuracy": probe[best],
                "null_probe_accuracy": None if null is None else null["mean"][best],
                "cross_context_cosine": cos_theme[best],
            },
            "emotion_vector": {"file": layout.EMOTION_VECTORS, "norm_by_layer": evec.norm(dim=-1).tolist()},
            "circuit": {
                "file": f"circuits/{e}.json",
                "neurons": c.n_neurons,
                "heads": c.n_heads,
                "write_norm_by_layer": writes.norm(dim=-1).tolist(),
                "faithfulness": None
                if c.faithfulness is None
                else {
                    "faithfulness": c.faithfulness["faithfulness"],
                    "random_faithfulness": c.faithfulness["random"]["faithfulness"]["mean"],
                    "ablation_loss": c.faithfulness["ablation_loss"],
                    "split": (c.faithfulness.get("items") or {}).get("split", "train"),
                    "random_ablation_loss": c.faithfulness["random"]["ablation_loss"]["mean"],
                    "judged": (c.faithfulness.get("judged") or {}).get("accuracy"),
                },
            },
            "va": None,
        }
        if axes is not None:
            xy = axes.project(sev[axes.layer].float()).tolist()
            centroid = va_summary.get("projection", {}).get(e)
            rating = va_summary.get("ratings", {}).get(e)
            rec["va"] = {
                "layer": axes.layer,
                "valence": None if centroid is None else centroid[0],
                "arousal": None if centroid is None else centroid[1],
                "what": "the emotion's text centroid on the VA axes of the va run (its summary.json 'projection')",
                "rating": rating,
                "direction_valence": xy[0],
                "direction_arousal": xy[1],
                "r2": axes.r2,
            }
        layer_rows = {
            "direction_vs_emotion_vector": [_cos(sev[l], evec[l]) for l in range(L)],
            "direction_vs_circuit_write": [_cos(sev[l], writes[l]) for l in range(L)],
            "emotion_vector_vs_circuit_write": [_cos(evec[l], writes[l]) for l in range(L)],
        }
        if concept is not None and e in concept.emotions:
            cu = concept.unit[1, :, concept.emotions.index(e)]
            layer_rows["direction_vs_concept"] = [_cos(sev[l], cu[l]) for l in range(L)]
            rec["concept"] = {
                "file": f"{CONCEPT_DIRECTIONS}.safetensors",
                "recipe": concept.prompts,
                "cosine_with_direction_at_best_layer": layer_rows["direction_vs_concept"][best],
            }
        per_layer[e] = layer_rows
        rec["agreement_at_best_layer"] = {k: v[best] for k, v in layer_rows.items()}
        records[e] = rec
    names = list(dirs.emotions)
    ov = {
        kind: [[overlap(circuits_[a], circuits_[b])[kind] for b in names] for a in names]
        for kind in ("neurons", "heads")
    }
    return {
        "model": model.describe(),
        "provenance": provenance,
        "emotions": records,
        "agreement": {"per_layer": per_layer, "overlap": {"emotions": names, **ov}},
    }


def _fmt(x: Any, digits: int = 2) -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        return f"{x:.{digits}f}"
    return html.escape(str(x))


def _splits(recs: dict[str, Any]) -> str:
    got = {(r["circuit"].get("faithfulness") or {}).get("split") for r in recs.values()} - {None}
    names = {"test": "held-out test items", "train": "in-sample train rows"}
    return "faithfulness on " + " and ".join(names[s] for s in sorted(got)) if got else "faithfulness not measured"


def atlas_html(atlas: dict[str, Any]) -> str:
    """An HTML page of the atlas: the per-emotion table, the overlap matrices and the per-layer agreement
    curves (plotly inlined: the page works offline)."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    from circuits.figures.render import plotly_html

    recs = atlas["emotions"]
    rows = []
    for e, r in recs.items():
        f = r["circuit"].get("faithfulness") or {}
        ag = r["agreement_at_best_layer"]
        va = r["va"] or {}
        rows.append(
            "<tr>"
            + "".join(
                f"<td>{c}</td>"
                for c in (
                    html.escape(e),
                    r["direction"]["best_layer"],
                    _fmt(r["direction"]["probe_accuracy"]),
                    _fmt(r["direction"]["null_probe_accuracy"]),
                    _fmt(r["direction"]["cross_context_cosine"]),
                    _fmt(ag.get("direction_vs_emotion_vector")),
                    _fmt(ag.get("direction_vs_circuit_write")),
                    _fmt(ag.get("direction_vs_concept")),
                    r["circuit"]["neurons"],
                    r["circuit"]["heads"],
                    _fmt(f.get("faithfulness")),
                    _fmt(f.get("random_faithfulness")),
                    _fmt(f.get("ablation_loss")),
                    _fmt(f.get("random_ablation_loss")),
                    _fmt(va.get("valence")),
                    _fmt(va.get("arousal")),
                    _fmt((va.get("rating") or [None, None])[0]),
                    _fmt((va.get("rating") or [None, None])[1]),
                    _fmt(va.get("direction_valence")),
                    _fmt(va.get("direction_arousal")),
                )
            )
            + "</tr>"
        )
    head = (
        "emotion",
        "best layer",
        "probe acc.",
        "null probe",
        "cross-context cos",
        "cos dir-EV",
        "cos dir-circuit",
        "cos dir-concept",
        "neurons",
        "heads",
        "faithfulness",
        "random",
        "ablation loss",
        "random",
        "valence",
        "arousal",
        "rated valence",
        "rated arousal",
        "SEV dir. valence",
        "SEV dir. arousal",
    )
    table = "<table><tr>" + "".join(f"<th>{h}</th>" for h in head) + "</tr>" + "".join(rows) + "</table>"
    ov = atlas["agreement"]["overlap"]
    names = ov["emotions"]

    def matrix(kind: str) -> str:
        body = "".join(
            "<tr><th>" + html.escape(a) + "</th>" + "".join(f"<td>{v:.2f}</td>" for v in ov[kind][i]) + "</tr>"
            for i, a in enumerate(names)
        )
        return (
            f"<h3>{kind}</h3><table><tr><th></th>"
            + "".join(f"<th>{html.escape(n)}</th>" for n in names)
            + "</tr>"
            + body
            + "</table>"
        )

    keys = sorted({k for v in atlas["agreement"]["per_layer"].values() for k in v})
    fig = make_subplots(rows=1, cols=len(keys), subplot_titles=[k.replace("_", " ") for k in keys])
    for c, k in enumerate(keys):
        for e, v in atlas["agreement"]["per_layer"].items():
            if k in v:
                fig.add_trace(go.Scatter(y=v[k], name=e, legendgroup=e, showlegend=c == 0), row=1, col=c + 1)
    fig.update_xaxes(title="layer")
    fig.update_yaxes(range=[-1, 1])
    fig.update_layout(title="Agreement per layer (cosine)", height=420)
    p = atlas["provenance"]
    prov = (
        f"model <b>{html.escape(p['model']['name'])}</b> (fingerprint {html.escape(p['model']['fingerprint'])}); "
        f"dataset sha256 {html.escape(p['dataset']['sha256'][:16])}... ({p['dataset'].get('n_scenarios')} scenarios); "
        f"judge {html.escape(str(p['judge']))}; {html.escape(p['package'])}; prompts "
        f"<code>{html.escape(json.dumps(p['prompts']))}</code>"
    )
    style = (
        "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;margin:1em 0}"
        "td,th{border:1px solid #ccc;padding:3px 7px;text-align:right}th{background:#f4f4f4}"
    )
    return (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>Emotion atlas: "
        f"{html.escape(p['model']['name'])}</title><style>{style}</style></head><body>"
        f"<h1>Emotion atlas: {html.escape(p['model']['name'])}</h1><p>{prov}</p>{table}"
        f"<p>null probe: permuted emotion labels (mean over seeds); faithfulness against random circuits of "
        f"equal size per layer ({html.escape(_splits(recs))}); cosines at each emotion's best probe layer; "
        f"valence / arousal: the emotion's text centroid on the VA axes of the va run, next to the ratings "
        f"the axes were fitted to and the SEV direction's projection.</p>"
        f"<h2>Circuit overlap across emotions (Jaccard)</h2>{matrix('neurons')}{matrix('heads')}"
        f"<h2>Agreement per layer</h2>{plotly_html(fig, full_html=False)}</body></html>"
    )


def write_atlas(
    model: ModelHandle, run_dir: str | Path, va_dir: str | Path | None = None, progress: bool = True
) -> dict[str, Any]:
    """:func:`build_atlas`, written to ``atlas.json`` and ``atlas.html`` in the run (atomically)."""
    atlas = build_atlas(model, run_dir, va_dir, progress=progress)
    run = Path(run_dir)
    with owned(run, "--run"):
        write_json_atomic(run / ATLAS_JSON, atlas)
        write_text_atomic(run / ATLAS_HTML, atlas_html(atlas))
    return atlas


def atlas_table(atlas: dict[str, Any]) -> str:
    """Plain text: per emotion the headline numbers of the atlas."""
    lines = [
        f"{'emotion':<10} {'layer':>5} {'probe':>6} {'null':>6} {'cos EV':>7} {'cos circ':>8} {'cos conc':>8} "
        f"{'faithful':>8} {'random':>7} {'valence':>7} {'arousal':>7}"
    ]
    for e, r in atlas["emotions"].items():
        ag, f = r["agreement_at_best_layer"], r["circuit"]["faithfulness"] or {}
        lines.append(
            f"{e:<10} {r['direction']['best_layer']:>5} {_fmt(r['direction']['probe_accuracy']):>6} "
            f"{_fmt(r['direction']['null_probe_accuracy']):>6} {_fmt(ag.get('direction_vs_emotion_vector')):>7} "
            f"{_fmt(ag.get('direction_vs_circuit_write')):>8} {_fmt(ag.get('direction_vs_concept')):>8} "
            f"{_fmt(f.get('faithfulness')):>8} {_fmt(f.get('random_faithfulness')):>7} "
            f"{_fmt((r['va'] or {}).get('valence')):>7} {_fmt((r['va'] or {}).get('arousal')):>7}"
        )
    return "\n".join(lines)


__all__: Sequence[str] = ("build_atlas", "atlas_html", "write_atlas", "circuit_layer_writes")
