"""One report page per run: :func:`write_run_report` reads a run directory's files and writes ``report.html``
(self-contained, offline) or ``findings.md`` (Markdown tables for docs) through
:mod:`circuits.figures.report_page`.

Each section is gathered by a small function that reads plain files (JSON, JSON Lines; names from
:mod:`circuits.runs.layout`) and returns a plain dict, or None when the run does not hold it (the page
then says the section is absent and which command makes it). A file that exists but cannot be read
(broken JSON, an unexpected shape) raises :class:`~circuits.core.artifacts.InputError` naming it.
"""

from __future__ import annotations

import contextlib
import os
import shlex
from pathlib import Path
from typing import Any, Sequence

from circuits.core.artifacts import InputError, write_text_atomic
from circuits.core.ownership import owned
from circuits.runs import layout
from circuits.runs.rundir import Run, evaluation_folder

DOSE_JSON = "dose_response.json"  # written by ``emocircuits dose-response`` (in the run, or in its --out)
ATLAS_HTML = "atlas.html"
VA_SUMMARY_JSON = "summary.json"
FORMATS = ("html", "md")


# --- reading ----------------------------------------------------------------------------------------


class _Shape:
    """``with _Shape(path): ...`` turns a KeyError / TypeError / ... while reading ``path``'s content
    into an :class:`InputError` naming the file."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __enter__(self) -> None:
        return None

    def __exit__(self, et: Any, e: Any, tb: Any) -> bool:
        if (
            et is not None
            and issubclass(et, (KeyError, TypeError, ValueError, IndexError, AttributeError))
            and not issubclass(et, InputError)
        ):
            raise InputError(f"{self.path}: unexpected content ({et.__name__}: {e})") from None
        return False


def open_run(run_dir: str | os.PathLike) -> Run:
    """The :class:`~circuits.runs.rundir.Run` of ``run_dir`` with a readable ``summary.json`` object;
    :class:`InputError` naming what is missing or broken."""
    run = Run(run_dir, check=False)
    if not run.path.is_dir():
        raise InputError(f"{run.path}: no such run directory; make one with `emocircuits discover --out {run.path}`")
    if not run.has(layout.SUMMARY_JSON):
        raise InputError(
            f"{run.file(layout.SUMMARY_JSON)}: not found; not a discovery run, make one with "
            f"`emocircuits discover --out {run.path}`"
        )
    if not isinstance(run.summary, dict):
        raise InputError(f"{run.file(layout.SUMMARY_JSON)}: expected a JSON object")
    return run


# --- sections ---------------------------------------------------------------------------------------


def provenance_section(run: Run, evaluation: dict[str, Any] | None) -> dict[str, Any]:
    """Model, dataset, prompts, judge, package versions and command line, as far as the run records them."""
    summary = run.summary
    with _Shape(run.file(layout.SUMMARY_JSON)):
        model = summary.get("model") or {}
        versions = summary.get("versions") or summary.get("package_versions")
        command = summary.get("command") or summary.get("argv")
        if isinstance(command, (list, tuple)):
            command = shlex.join(str(c) for c in command)
        missing = []
        if not versions:
            missing.append("package versions")
        if not command:
            missing.append("command line")
        for key, name in (("model", "model"), ("dataset", "dataset"), ("prompts", "prompt settings")):
            if not summary.get(key):
                missing.append(name)
        rows = summary.get("rows") or {}
        return {
            "model": {"name": model.get("name"), "fingerprint": model.get("fingerprint")},
            "dataset": dict(summary.get("dataset") or {}),
            "prompts": dict(summary.get("prompts") or {}),
            "judge": summary.get("judge"),
            "evaluation_judge": (evaluation or {}).get("judge"),
            "evaluation_judge_subject": (evaluation or {}).get("judge_subject"),
            "versions": dict(versions) if versions else None,
            "command": command or None,
            "rows": {k: v for k, v in rows.items() if not isinstance(v, dict)},
            "run": str(run.path),
            "missing": missing,
        }


def _min_max(seeds: Sequence[Sequence[float]]) -> tuple[list[float], list[float]]:
    cols = list(zip(*seeds))
    return [min(c) for c in cols], [max(c) for c in cols]


def probe_section(run: Run) -> dict[str, Any] | None:
    """Probe accuracy per layer at both read points, its permuted-label null band (min to max over
    seeds, mlp read point) and the cross-context cosines with their null band (by theme, mlp)."""
    path = run.file(layout.EVIDENCE_JSON)
    ev = run.json(layout.EVIDENCE_JSON, None)
    if ev is None:
        return None
    with _Shape(path):
        acc = {rp: [float(v) for v in ys] for rp, ys in ev["probe_accuracy"].items()}
        n_layers = len(next(iter(acc.values())))
        points = list(acc)
        cosine = {}
        for ctx in ("theme", "valence"):
            per = ev.get(f"cosine_by_{ctx}")
            if per:
                # one list per read point, in the order of the probe's read points (attn, mlp)
                cosine[ctx] = {rp: [float(v) for v in per[i]] for i, rp in enumerate(points[: len(per)])}
        out: dict[str, Any] = {
            "layers": list(range(n_layers)),
            "probe_accuracy": acc,
            "cosine": cosine,
            "null": None,
            "null_cosine": None,
        }
        null = ev.get("null")
        if null:
            p = null["probe_accuracy"]["mlp"]
            lo, hi = _min_max(p["seeds"])
            out["null"] = {
                "read_point": "mlp",
                "mean": [float(v) for v in p["mean"]],
                "lo": lo,
                "hi": hi,
                "chance": null.get("chance"),
                "seeds": null.get("seeds"),
                "method": null.get("method"),
            }
            c = null.get("cosine_by_theme")
            if c and "mlp" in points:
                i = points.index("mlp")
                lo, hi = _min_max([s[i] for s in c["seeds"]])
                out["null_cosine"] = {
                    "context": "theme",
                    "read_point": "mlp",
                    "mean": [float(v) for v in c["mean"][i]],
                    "lo": lo,
                    "hi": hi,
                }
        return out


def _circuit_files(run: Run) -> list[Path]:
    folder = run.file(layout.CIRCUITS_DIR)
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.glob("*.json") if p.name.count(".") == 1)  # not *.graph.json / *.nodelink.json


def _jaccard(a: set, b: set) -> float:
    return 1.0 if not a and not b else len(a & b) / len(a | b)


def _faith_block(b: dict[str, Any]) -> dict[str, Any]:
    rnd = b.get("random") or {}
    rf = rnd.get("faithfulness") or {}
    seeds = [float(v) for v in rf.get("seeds") or []]
    return {
        "faithfulness": b.get("faithfulness"),
        "random_mean": rf.get("mean"),
        "random_std": rf.get("std"),
        "random_lo": min(seeds) if seeds else None,
        "random_hi": max(seeds) if seeds else None,
        "ablation_loss": b.get("ablation_loss"),
        "random_ablation_loss": (rnd.get("ablation_loss") or {}).get("mean"),
        "split": (b.get("items") or {}).get("split", (b.get("config") or {}).get("split")),
        "rows": b.get("rows"),
    }


def circuits_section(run: Run) -> dict[str, Any] | None:
    """From ``circuits/{emotion}.json``: units per layer, Jaccard overlap of (layer, unit) sets across
    emotions, and each circuit's faithfulness block (else ``faithfulness.json``'s) against random circuits."""
    files = _circuit_files(run)
    circuits: dict[str, Any] = {}
    for path in files:
        c = run.json(path.relative_to(run.path), None)
        if isinstance(c, dict) and c.get("kind") == "emotion-circuit":
            circuits[path] = c
    if not circuits:
        return None
    order = list((run.summary.get("config") or {}).get("emotions") or [])
    by_emotion: dict[str, tuple[Path, dict[str, Any]]] = {}
    for path, c in circuits.items():
        with _Shape(path):
            by_emotion[str(c["emotion"])] = (path, c)
    emotions = [e for e in order if e in by_emotion] + sorted(e for e in by_emotion if e not in order)
    n_layers = 0
    units: dict[str, Any] = {}
    sets: dict[str, dict[str, set]] = {}
    faith: dict[str, Any] = {}
    fjson = run.json(layout.FAITHFULNESS_JSON, None)
    for e in emotions:
        path, c = by_emotion[e]
        with _Shape(path):
            L = int((c.get("model") or {}).get("arch", {}).get("n_layers") or 0) or 1 + max(
                (int(lc["layer"]) for lc in c["layers"]), default=-1
            )
            n_layers = max(n_layers, L)
            neurons, heads = [0] * L, [0] * L
            ns, hs = set(), set()
            for lc in c["layers"]:
                layer = int(lc["layer"])
                nn = [int(i) for i in (lc.get("mlp") or {}).get("neurons") or []]
                hh = [int(h) for h in (lc.get("attention") or {}).get("heads") or []]
                neurons[layer], heads[layer] = len(nn), len(hh)
                ns |= {(layer, i) for i in nn}
                hs |= {(layer, h) for h in hh}
            units[e] = {"neurons": neurons, "heads": heads}
            sets[e] = {"neurons": ns, "heads": hs}
            block = c.get("faithfulness")
        if not block and fjson:
            with _Shape(run.file(layout.FAITHFULNESS_JSON)):
                block = (fjson.get("blocks") or {}).get(e)
        if block:
            with _Shape(path):
                faith[e] = _faith_block(block)
    for e in emotions:  # pad to the widest
        for k in ("neurons", "heads"):
            units[e][k] += [0] * (n_layers - len(units[e][k]))
    jaccard = {
        k: [[_jaccard(sets[a][k], sets[b][k]) for b in emotions] for a in emotions] for k in ("neurons", "heads")
    }
    return {
        "emotions": emotions,
        "n_layers": n_layers,
        "units": units,
        "jaccard": jaccard,
        "faithfulness": faith or None,
    }


def evaluation_section(run: Run, evaluation: dict[str, Any] | None) -> dict[str, Any] | None:
    """The method table of ``evaluation.json`` and the replies behind each (method, emotion) cell, from
    ``replies.jsonl`` (every judged reply) or else the examples ``evaluation.json`` keeps."""
    if evaluation is None:
        return None
    folder = evaluation_folder(run) or run.path
    rel = folder.relative_to(run.path)
    path = folder / layout.EVALUATION_JSON
    replies_name = str(rel / layout.REPLIES_JSONL)
    with _Shape(path):
        methods = {}
        for m, r in evaluation["methods"].items():
            methods[m] = {
                "accuracy": r.get("accuracy"),
                "raw_accuracy": r.get("raw_accuracy"),
                "broken_share": r.get("broken_share"),
                "per_emotion": dict(r.get("per_emotion") or {}),
                "perplexity": r.get("perplexity"),
                "distinct_2": r.get("distinct_2"),
                "n": r.get("n"),
            }
        emotions = list((evaluation.get("config") or {}).get("emotions") or [])
        for r in methods.values():
            emotions += [e for e in r["per_emotion"] if e not in emotions]
        replies: dict[str, dict[str, list[dict[str, Any]]]] = {m: {e: [] for e in emotions} for m in methods}
        rows = run.jsonl(replies_name)
        source = None
        if rows:
            source = replies_name
            with _Shape(run.file(replies_name)):
                for r in rows:
                    m, e = r.get("method"), r.get("label")
                    if m in replies and e is not None:
                        replies[m].setdefault(e, []).append(
                            {"text": r.get("text", ""), "valence": r.get("valence"), "verdict": r.get("verdict")}
                        )
        else:
            for m, r in evaluation["methods"].items():
                for ex in r.get("examples") or []:
                    source = f"{rel / layout.EVALUATION_JSON} (examples only: {replies_name} is absent)"
                    replies[m].setdefault(ex["emotion"], []).append(
                        {"text": ex.get("reply", ""), "valence": ex.get("valence"), "verdict": ex.get("judged")}
                    )
        replies = {m: {e: rs for e, rs in by.items() if rs} for m, by in replies.items()}
        return {
            "methods": methods,
            "emotions": emotions,
            "judge": evaluation.get("judge"),
            "fluency": evaluation.get("fluency"),
            "dataset": dict(evaluation.get("dataset") or {}),
            "replies": {m: by for m, by in replies.items() if by},
            "replies_source": source,
        }


def find_dose(run: Run) -> Path | None:
    """``dose_response.json`` in the run, else in a folder of the run (``dose-response --out RUN/dose``)."""
    if run.has(DOSE_JSON):
        return run.file(DOSE_JSON)
    found = sorted(run.path.glob(f"*/{DOSE_JSON}"))
    return found[0] if found else None


def dose_section(run: Run) -> dict[str, Any] | None:
    """``dose_response.json`` as written (points, random-control bands, prompting / neutral references)."""
    path = find_dose(run)
    if path is None:
        return None
    d = run.json(path.relative_to(run.path))
    with _Shape(path):
        for method, t in d["methods"].items():
            for c in t["control"]:
                if not isinstance(c["lo"], dict) or not isinstance(c["hi"], dict):
                    raise ValueError(f"the random-control band of {method} has no lo / hi values")
        d["file"] = str(path)
        return d


def validity_section(run: Run) -> dict[str, Any] | None:
    """``validity/validity.json`` (``emocircuits validity``) as the verdict and steering tables' rows,
    the rule, the set sizes and the token-identity baseline."""
    from circuits.runs.validity import report_data

    name = f"{layout.VALIDITY_DIR}/{layout.VALIDITY_JSON}"
    if not run.has(name):
        return None
    res = run.json(name)
    with _Shape(run.file(name)):
        return report_data(res, str(run.file(name)))


def va_section(va_dir: str | os.PathLike | None) -> dict[str, Any] | None:
    """The circle and steering curves of a VA run's ``summary.json`` (None without a VA directory)."""
    if va_dir is None:
        return None
    va = Run(va_dir, check=False)
    if not va.path.is_dir():
        raise InputError(f"{va.path}: no such VA run directory; make one with `emocircuits va --out {va.path}`")
    path = va.file(VA_SUMMARY_JSON)
    if not path.is_file():
        raise InputError(f"{path}: not found; not a VA run, make one with `emocircuits va --out {va.path}`")
    s = va.json(VA_SUMMARY_JSON)
    with _Shape(path):
        return {
            "layer": s.get("layer"),
            "emotions": list(s.get("emotions") or s["projection"]),
            "projection": {e: [float(x) for x in v] for e, v in s["projection"].items()},
            "ratings": {e: list(v) for e, v in (s.get("ratings") or {}).items()},
            "circumplex": dict(s.get("circumplex") or {}),
            "fit": dict(s.get("fit") or {}),
            "steering": [
                {
                    "direction": r["direction"],
                    "alpha": r["alpha"],
                    "valence_proj": r.get("valence_proj"),
                    "arousal_proj": r.get("arousal_proj"),
                    "judged": r.get("judged") or {},
                }
                for r in s.get("steering") or []
            ],
            "behaviour": s.get("behaviour"),
            "model": (s.get("model") or {}).get("name"),
            "dir": str(va.path),
            "command": s.get("command"),
        }


def claims_section(run: Run, va_dir: str | os.PathLike | None) -> dict[str, Any]:
    """The papers' claims read from this run (and its VA run): :func:`circuits.runs.replicate.replicate`
    with one model."""
    from circuits.runs.replicate import replicate

    return replicate([run.path], [va_dir] if va_dir is not None else [])


def views_section(run: Run, page_dir: Path) -> list[dict[str, str]] | None:
    """Every other HTML view the run holds (figures, accuracy, atlas, dose-response, traces, circuit views),
    as links relative to the folder of the report page; hidden paths (the staging folder a killed command
    left, an atomic write's temporary file) are not views."""
    found = [
        p
        for p in sorted(run.path.rglob("*.html"))
        if p.name != layout.REPORT_HTML
        and layout.STORE_DIR not in (parts := p.relative_to(run.path).parts)
        and not any(part.startswith(".") for part in parts)
    ]
    views = [
        {"path": Path(os.path.relpath(p, page_dir)).as_posix(), "title": p.relative_to(run.path).as_posix()}
        for p in found
    ]
    return views or None


def gather_report(
    run_dir: str | os.PathLike, va_dir: str | os.PathLike | None = None, page_dir: str | os.PathLike | None = None
) -> dict[str, Any]:
    """The data of :func:`circuits.figures.report_page.report_html` for a run (links relative to ``page_dir``,
    default the run directory)."""
    run = open_run(run_dir)
    evaluation = run.evaluation
    name = (run.summary.get("model") or {}).get("name") or run.path.name
    return {
        "title": f"Run report: {run.path.name} ({name})",
        "run": str(run.path),
        "provenance": provenance_section(run, evaluation),
        "probe": probe_section(run),
        "circuits": circuits_section(run),
        "evaluation": evaluation_section(run, evaluation),
        "dose": dose_section(run),
        "validity": validity_section(run),
        "va": va_section(va_dir),
        "claims": claims_section(run, va_dir),
        "views": views_section(run, Path(page_dir) if page_dir is not None else run.path),
        "absent": {"va": "`emocircuits va --out VA_DIR` (no VA run directory was given to the report)"},
    }


def write_run_report(
    run_dir: str | os.PathLike,
    va_dir: str | os.PathLike | None = None,
    out: str | os.PathLike | None = None,
    fmt: str = "html",
    title: str | None = None,
    intro: str | None = None,
) -> Path:
    """Write the report of ``run_dir`` (with the VA run ``va_dir`` when given): ``fmt="html"`` a
    self-contained ``report.html``, ``fmt="md"`` Markdown tables as ``findings.md``; to ``out`` (a file,
    or a folder to write the default name into; default the run directory), atomically, under ``title``
    (default: the run's name and model) with ``intro`` (a paragraph, e.g. how the run was made) below
    it. Returns the path.
    :class:`InputError` (naming the file) for a missing run directory, a missing ``summary.json`` or a
    file that cannot be read."""
    from circuits.figures.report_page import report_html, report_markdown

    if fmt not in FORMATS:
        raise InputError(f"report format {fmt!r}: expected one of {', '.join(FORMATS)}")
    run = Path(run_dir)
    default = layout.REPORT_HTML if fmt == "html" else layout.FINDINGS_MD
    target = run / default if out is None else Path(out)
    if target.is_dir():
        target = target / default
    data = gather_report(run, va_dir, page_dir=target.parent)
    data.update({k: v for k, v in (("title", title), ("intro", intro)) if v})
    text = report_html(data) if fmt == "html" else report_markdown(data)
    target.parent.mkdir(parents=True, exist_ok=True)
    # the run's own page is written under the run's writer lock; a page elsewhere is the user's file
    with owned(run, "--out") if target.parent.resolve() == run.resolve() else contextlib.nullcontext():
        return write_text_atomic(target, text)


__all__: Sequence[str] = ("write_run_report", "gather_report", "open_run")
