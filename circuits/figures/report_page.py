"""One self-contained report page per run: plain dicts in, a string out (HTML or Markdown); no file reading.

:func:`report_html` draws a single HTML page that works offline (plotly.js inlined once, in the first
figure; every later figure reuses it), with a table of contents and one section per part of a run:

* ``provenance``: model (name, fingerprint), dataset (path, sha256), prompt settings, judge, package
  versions and the command line (what the run records; what it does not record is said plainly);
* ``probe``: probe accuracy per layer at both read points against the permuted-label null band, and the
  cross-context cosines;
* ``circuits``: units per layer (neurons, heads), overlap across emotions (Jaccard), faithfulness against
  random circuits of equal size;
* ``evaluation``: the method table (accuracy, per-emotion accuracy, perplexity, distinct-2) and the
  replies behind each cell (collapsible, one ``<details>`` per method and emotion);
* ``dose``: dose-response curves of each steered method with the band of its random controls;
* ``validity``: emotion state or instruction word, per layer band, and steering with each prompt
  set's directions (``emocircuits validity``);
* ``va``: the valence-arousal circle and the steering curves of a VA run;
* ``views``: links to the other HTML views the run holds (figures, accuracy, atlas, traces, circuit views).

A section whose data is None is shown as absent, with the command that makes it.
:func:`report_markdown` renders the same content as Markdown tables (no figures, no replies) for docs
findings pages. Numbers are printed by :func:`fmt` in both, so a table cell can be checked against
the artifact it came from.

The data (:func:`circuits.runs.report.gather_report` builds it from a run directory)::

    {"title": str, "run": str,
     "provenance": {"model": {"name", "fingerprint"}, "dataset": {"path", "sha256", "n_scenarios"},
                    "prompts": {...}, "judge": str, "evaluation_judge": str | None,
                    "evaluation_judge_subject": {"reads_through", "is_subject"} | None, "versions": {pkg: v} | None,
                    "command": str | None, "rows": {...} | None, "missing": [str, ...]},
     "probe": {"layers": [int], "probe_accuracy": {"attn": [...], "mlp": [...]},
               "null": {"read_point": "mlp", "mean": [...], "lo": [...], "hi": [...], "chance": float,
                        "seeds": int, "method": str} | None,
               "cosine": {"theme": {"attn": [...], "mlp": [...]}, "valence": {...}},
               "null_cosine": {"context": "theme", "read_point": "mlp", "mean", "lo", "hi"} | None},
     "circuits": {"emotions": [str], "n_layers": int,
                  "units": {emotion: {"neurons": [per layer], "heads": [per layer]}},
                  "jaccard": {"neurons": [[...]], "heads": [[...]]},
                  "faithfulness": {emotion: {"faithfulness", "random_mean", "random_std", "random_lo", "random_hi",
                                             "ablation_loss", "random_ablation_loss", "split", "rows"}} | None},
     "evaluation": {"methods": {method: {"accuracy" (fluent where "fluency" is set), "raw_accuracy",
                                         "broken_share", "per_emotion": {e: acc}, "perplexity", "distinct_2", "n"}},
                    "emotions": [str], "judge", "fluency": {...} | None, "dataset": {...}, "replies_source": str,
                    "replies": {method: {emotion: [{"text", "valence", "verdict"}]}}},
     "dose": <dose_response.json as written by ``emocircuits dose-response``> | None,
     "validity": {"header", "rows", "intervals": [header, rows], "rule", "n", "seeds", "point", "judge", "steering_rows", "steering",
                  "file"} | None,
     "va": {"layer", "emotions", "projection": {e: [v, a]}, "ratings": {e: [v, a]},
            "circumplex": {"center": [x, y], "radius", ...}, "fit": {"r2", ...},
            "steering": [{"direction", "alpha", "valence_proj", "arousal_proj", "judged"}], "dir": str} | None,
     "views": [{"path": relative path, "title": str}],
     "absent": {section: "what makes it"}}
"""

from __future__ import annotations

import html
import math
import shlex
from typing import Any, Callable, Sequence

from circuits.figures.discovery import add_band
from circuits.figures.dose_curves import dose_response_figure
from circuits.figures.render import COLORS

SECTIONS = (
    ("provenance", "Provenance"),
    ("probe", "Probe accuracy and cross-context cosines"),
    ("circuits", "Circuits"),
    ("evaluation", "Steering methods"),
    ("dose", "Dose-response"),
    ("validity", "Emotion state or instruction word?"),
    ("va", "Valence-arousal"),
    ("claims", "The papers' claims"),
    ("views", "Other views of this run"),
)

#: what makes each section when its files are absent (overridable through ``data["absent"]``)
MAKES = {
    "provenance": "`emocircuits discover --out RUN` (summary.json)",
    "probe": "`emocircuits discover --out RUN` (directions_evidence.json); the null band: "
    "`emocircuits nulls --run RUN`",
    "circuits": "`emocircuits discover --out RUN` (circuits/*.json); faithfulness: `emocircuits faithfulness --run RUN`",
    "evaluation": "`emocircuits evaluate --run RUN` (evaluation.json, replies.jsonl)",
    "dose": "`emocircuits dose-response --run RUN` (dose_response.json)",
    "va": "`emocircuits va --out VA_DIR`, then pass the VA directory to the report",
    "validity": "`emocircuits validity --run RUN` (validity/validity.json)",
    "claims": "`emocircuits replicate --run RUN --va VA_DIR --out DIR` (the same table across models)",
    "views": "`emocircuits discover` (figures/), `evaluate` (accuracy.html), `atlas`, `trace`, `export-graph`",
}

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:0 auto;max-width:1200px;padding:1em 2em;
color:#222;line-height:1.4}
h1{font-size:1.6em}h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:2em}h3{margin-top:1.4em}
table{border-collapse:collapse;margin:.8em 0;font-size:.9em}
td,th{border:1px solid #ccc;padding:3px 8px;text-align:right;vertical-align:top}
th{background:#f4f4f4}td.l,th.l{text-align:left}caption{text-align:left;caption-side:top}
.absent{background:#fff8e1;border-left:4px solid #f0b400;padding:.5em 1em}
.note{color:#555;font-size:.9em}
nav.toc{background:#f8f8f8;border:1px solid #e4e4e4;padding:.5em 1.5em;display:inline-block}
nav.toc li.absent-entry a{color:#999}
details{margin:.2em 0 .2em 1em}summary{cursor:pointer}
ol.replies{font-size:.88em;margin:.3em 0}ol.replies li{margin:.15em 0}
.hit{color:#1a7f37}.miss{color:#b42318}
code{background:#f4f4f4;padding:0 .2em}
"""


def fmt(x: Any, digits: int = 3) -> str:
    """A number as the report prints it: floats with ``digits`` decimals, ints as they are, None / NaN as "-"."""
    if x is None:
        return "-"
    if isinstance(x, bool):
        return str(x)
    if isinstance(x, int):
        return str(x)
    if isinstance(x, float):
        if math.isnan(x):
            return "-"
        s = f"{x:.{digits}f}"
        return s[1:] if s.startswith("-") and not s.strip("-0.") else s  # no "-0.000"
    return str(x)


def _esc(x: Any) -> str:
    return html.escape(str(x), quote=True)


def _numeric(cell: str) -> bool:
    """A cell that reads as a number, "-" or a "lo to hi" band (right-aligned; text cells are left-aligned)."""
    for part in str(cell).split(" to "):
        try:
            float(part)
        except ValueError:
            if part != "-":
                return False
    return True


def _code(text: str) -> str:
    """``text`` escaped, with `backticked` spans as <code>."""
    parts = _esc(text).split("`")
    return "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))


def _band_text(lo: Any, hi: Any) -> str:
    return "-" if lo is None or hi is None else f"{fmt(lo)} to {fmt(hi)}"


# --- tables: one description, two renderings -------------------------------------------------------


class Table:
    """A table: ``header``, ``rows`` (cells are strings already formatted), an ``id`` and a caption."""

    def __init__(
        self,
        tid: str,
        header: Sequence[str],
        rows: Sequence[Sequence[str]],
        caption: str = "",
        keys: Sequence[str] | None = None,
    ) -> None:
        self.id, self.header, self.rows, self.caption = tid, list(header), [list(r) for r in rows], caption
        self.keys = list(keys) if keys is not None else [r[0] for r in self.rows]

    def html(self) -> str:
        head = "".join(
            f"<th class='l'>{_esc(h)}</th>" if i == 0 else f"<th>{_esc(h)}</th>" for i, h in enumerate(self.header)
        )
        body = "".join(
            f"<tr data-key='{_esc(k)}'>"
            + "".join(
                f"<td class='l'>{_esc(c)}</td>" if i == 0 or not _numeric(c) else f"<td>{_esc(c)}</td>"
                for i, c in enumerate(r)
            )
            + "</tr>"
            for k, r in zip(self.keys, self.rows)
        )
        cap = f"<caption class='note'>{_esc(self.caption)}</caption>" if self.caption else ""
        return f"<table id='{_esc(self.id)}'>{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"

    def markdown(self) -> str:
        def cell(c: str) -> str:
            return str(c).replace("|", "\\|").replace("\n", " ")

        lines = [
            "| " + " | ".join(cell(h) for h in self.header) + " |",
            "|" + "|".join(":---" if i == 0 else "---:" for i in range(len(self.header))) + "|",
        ]
        lines += ["| " + " | ".join(cell(c) for c in r) + " |" for r in self.rows]
        return ("*" + self.caption + "*\n\n" if self.caption else "") + "\n".join(lines)


# --- section contents (tables and notes, shared by HTML and Markdown) -------------------------------


def _reads_through(subject: dict[str, Any] | None) -> str | None:
    """``evaluation.json``'s ``judge_subject`` in words (None when the evaluation has none, or its judge
    reads no model's states)."""
    if not subject or not subject.get("reads_through"):
        return None
    through = str(subject["reads_through"])
    return through + (" (the model under study)" if subject.get("is_subject") else " (not the model under study)")


def provenance_tables(p: dict[str, Any]) -> list[Table]:
    model, ds = p.get("model") or {}, p.get("dataset") or {}
    rows = [
        ("model", model.get("name")),
        ("model fingerprint", model.get("fingerprint")),
        ("dataset", ds.get("path")),
        ("dataset sha256", ds.get("sha256")),
        ("dataset scenarios", ds.get("n_scenarios")),
        ("judge (discovery)", p.get("judge")),
        ("judge (evaluation)", p.get("evaluation_judge")),
        ("evaluation judge reads through", _reads_through(p.get("evaluation_judge_subject"))),
        ("command line", p.get("command") if p.get("command") else "not recorded"),
        ("run", p.get("run")),
    ]
    rows += [(f"rows: {k}", v) for k, v in (p.get("rows") or {}).items() if not isinstance(v, dict)]
    out = [
        Table(
            "table-provenance",
            ["item", "value"],
            [(k, fmt(v)) for k, v in rows if v is not None or k.startswith("judge")],
        )
    ]
    prompts = p.get("prompts") or {}
    if prompts:
        out.append(Table("table-prompts", ["prompt setting", "value"], [(k, fmt(v)) for k, v in prompts.items()]))
    versions = p.get("versions")
    if versions:
        out.append(Table("table-versions", ["package", "version"], [(k, fmt(v)) for k, v in versions.items()]))
    return out


def probe_tables(d: dict[str, Any]) -> list[Table]:
    acc, null = d.get("probe_accuracy") or {}, d.get("null")
    cos, ncos = d.get("cosine") or {}, d.get("null_cosine")
    points = list(acc)
    ctx = [(c, rp) for c in ("theme", "valence") for rp in (cos.get(c) or {})]
    header = ["layer"] + [f"probe {rp}" for rp in points]
    if null:
        header += [f"null probe {null['read_point']} (mean)", f"null probe {null['read_point']} (min to max)"]
    header += [f"cosine by {c} ({rp})" for c, rp in ctx]
    if ncos:
        header += [f"null cosine by {ncos['context']} ({ncos['read_point']}, min to max)"]
    rows = []
    for i, layer in enumerate(d["layers"]):
        r = [str(layer)] + [fmt(acc[rp][i]) for rp in points]
        if null:
            r += [fmt(null["mean"][i]), _band_text(null["lo"][i], null["hi"][i])]
        r += [fmt(cos[c][rp][i]) for c, rp in ctx]
        if ncos:
            r.append(_band_text(ncos["lo"][i], ncos["hi"][i]))
        rows.append(r)
    cap = "probe: held-out accuracy of a linear emotion probe per layer"
    if null:
        cap += (
            f"; null: {null.get('seeds')} label permutation(s) ({null.get('method')}), chance {fmt(null.get('chance'))}"
        )
    return [Table("table-probe", header, rows, cap)]


def circuit_tables(d: dict[str, Any]) -> list[Table]:
    emotions, units = d["emotions"], d["units"]
    L = d["n_layers"]
    out = []
    for kind in ("neurons", "heads"):
        rows = [[e] + [str(n) for n in units[e][kind]] + [str(sum(units[e][kind]))] for e in emotions]
        out.append(
            Table(
                f"table-units-{kind}",
                ["emotion"] + [f"L{l}" for l in range(L)] + ["total"],
                rows,
                f"{kind} per layer in each circuit",
            )
        )
    for kind in ("neurons", "heads"):
        m = d["jaccard"][kind]
        out.append(
            Table(
                f"table-jaccard-{kind}",
                [f"Jaccard ({kind})"] + list(emotions),
                [[a] + [fmt(v) for v in m[i]] for i, a in enumerate(emotions)],
                f"overlap of the circuits' {kind} ((layer, index) pairs) across emotions",
            )
        )
    f = d.get("faithfulness")
    if f:
        rows = [
            [
                e,
                fmt(b.get("faithfulness")),
                fmt(b.get("random_mean")),
                fmt(b.get("random_std")),
                _band_text(b.get("random_lo"), b.get("random_hi")),
                fmt(b.get("ablation_loss")),
                fmt(b.get("random_ablation_loss")),
                fmt(b.get("split")),
                fmt(b.get("rows")),
            ]
            for e, b in f.items()
        ]
        out.append(
            Table(
                "table-faithfulness",
                [
                    "emotion",
                    "faithfulness",
                    "random (mean)",
                    "random (std)",
                    "random (min to max)",
                    "ablation loss",
                    "random ablation loss",
                    "items",
                    "rows",
                ],
                rows,
                "faithfulness of each circuit against random circuits of equal size per layer",
            )
        )
    return out


def evaluation_tables(d: dict[str, Any]) -> list[Table]:
    """The method table: fluent accuracy first (broken replies count as misses), then raw accuracy and
    the broken share; an evaluation from before the fluency check shows its raw accuracy alone."""
    emotions = d["emotions"]
    checked = d.get("fluency") is not None
    rows = []
    for m, r in d["methods"].items():
        rows.append(
            [m, fmt(r.get("accuracy"))]
            + ([fmt(r.get("raw_accuracy")), fmt(r.get("broken_share"))] if checked else [])
            + [fmt((r.get("per_emotion") or {}).get(e)) for e in emotions]
            + [fmt(r.get("perplexity")), fmt(r.get("distinct_2")), fmt(r.get("n"))]
        )
    if checked:
        cap = (
            "fluent accuracy: share of replies judged as the target emotion, replies the fluency check flags "
            f"as broken counted as misses; raw: the judge alone; broken: share flagged (judge {d.get('judge')})"
        )
        head = ["method", "fluent accuracy", "raw accuracy", "broken"]
    else:
        cap = f"share of replies judged as the target emotion (judge {d.get('judge')}; no fluency check: raw)"
        head = ["method", "accuracy"]
    ds = d.get("dataset") or {}
    if ds:
        cap += f"; test items {ds.get('path')} ({ds.get('n_scenarios')} scenarios)"
    return [Table("table-methods", head + list(emotions) + ["perplexity", "distinct-2", "n"], rows, cap)]


def dose_tables(d: dict[str, Any]) -> list[Table]:
    ref = d.get("reference") or {}
    rows, keys = [], []
    for name in ("prompting", "neutral"):
        if name in ref:
            p = ref[name]
            rows.append(
                [
                    name,
                    "-",
                    fmt(p.get("accuracy")),
                    fmt(p.get("emotion_score")),
                    fmt(p.get("perplexity")),
                    "-",
                    "-",
                    "-",
                ]
            )
            keys.append(name)
    for method, t in (d.get("methods") or {}).items():
        for p, c in zip(t.get("points", []), t.get("control", [])):
            lo, hi = c.get("lo") or {}, c.get("hi") or {}
            rows.append(
                [
                    method,
                    fmt(p.get("strength")),
                    fmt(p.get("accuracy")),
                    fmt(p.get("emotion_score")),
                    fmt(p.get("perplexity")),
                    fmt(c.get("accuracy")),
                    _band_text(lo.get("accuracy"), hi.get("accuracy")),
                    fmt(c.get("perplexity")),
                ]
            )
            keys.append(f"{method}@{fmt(p.get('strength'))}")
    dev = d.get("dev") or {}
    fluent = any("broken_share" in p for t in (d.get("methods") or {}).values() for p in t.get("points", []))
    acc = "fluent accuracy" if fluent else "accuracy"
    cap = (
        f"dev items {dev.get('path')} ({dev.get('n_scenarios')} scenarios, {dev.get('items_per_point')} replies "
        f"per point); judge {d.get('judge')}; random controls of equal norm over {d.get('n_control_seeds')} seed(s)"
        + ("; fluent accuracy: broken replies count as misses" if fluent else "")
    )
    out = [
        Table(
            "table-dose",
            [
                "method",
                "strength",
                acc,
                "emotion score",
                "perplexity",
                f"random {acc} (mean)",
                f"random {acc} (min to max)",
                "random perplexity",
            ],
            rows,
            cap,
            keys,
        )
    ]
    match = [
        [
            m,
            fmt((t.get("match_prompting") or {}).get("strength")),
            fmt((t.get("match_prompting") or {}).get("perplexity")),
            fmt((t.get("match_prompting") or {}).get("target")),
        ]
        for m, t in (d.get("methods") or {}).items()
    ]
    if match:
        out.append(
            Table(
                "table-dose-match",
                ["method", "strength reaching prompting", "perplexity there", f"prompting {acc}"],
                match,
            )
        )
    return out


def validity_tables(d: dict[str, Any]) -> list[Table]:
    """The verdict per layer band, the transfer intervals and (when it steered) the steering arms of
    ``emocircuits validity``."""
    out = [
        Table(
            "table-validity",
            d["header"],
            d["rows"],
            f"Band means; in brackets the 95th percentile of {d['seeds']} permuted-label draws; read point "
            f"{d['point']}. Forward: fitted on explicit prompts, read on the set; reverse: fitted on the set, "
            "read on explicit prompts; cosine: explicit vs the set's directions.",
        ),
        Table(
            "table-validity-intervals",
            *d["intervals"],
            "Transfer accuracy per band with 95% Wilson intervals (the band mean as a share of the test "
            "side's n) and the null's 95th percentile.",
        ),
    ]
    if d.get("steering_rows"):
        st = d.get("steering") or {}
        out.append(
            Table(
                "table-validity-steering",
                ["arm", "fluent accuracy [95% interval]", "broken", "n"],
                d["steering_rows"],
                f"Steering on {st.get('n_scenarios')} SEV test scenario(s) with the neutral prompt, judge "
                f"{d.get('judge')}: direction alpha {st.get('direction_alpha')} on layers {st.get('layers')}, "
                f"circuit lambda {st.get('circuit_lambda')}, positions {st.get('positions')} (from "
                f"{st.get('strengths_from')}).",
            )
        )
    return out


def va_tables(d: dict[str, Any]) -> list[Table]:
    proj, ratings = d.get("projection") or {}, d.get("ratings") or {}
    rows = [
        [
            e,
            fmt(proj[e][0]),
            fmt(proj[e][1]),
            fmt((ratings.get(e) or [None, None])[0]),
            fmt((ratings.get(e) or [None, None])[1]),
        ]
        for e in d.get("emotions") or proj
    ]
    fit, circ = d.get("fit") or {}, d.get("circumplex") or {}
    r2 = fit.get("r2")
    r2 = ", ".join(f"{k} {fmt(v)}" for k, v in r2.items()) if isinstance(r2, dict) else fmt(r2)
    held = fit.get("heldout")
    held = f"; each emotion left out: R2 {', '.join(f'{k} {fmt(v)}' for k, v in held['r2'].items())}" if held else ""
    cap = (
        f"layer {d.get('layer')}; fit R2 {r2} (in sample){held}; circle centre "
        f"{', '.join(fmt(v) for v in circ.get('center') or [])}, radius {fmt(circ.get('radius'))}"
    )
    out = [
        Table(
            "table-va",
            ["emotion", "valence (projected)", "arousal (projected)", "valence (rated)", "arousal (rated)"],
            rows,
            cap,
        )
    ]
    steer = d.get("steering") or []
    if steer:
        out.append(
            Table(
                "table-va-steering",
                ["direction", "alpha", "valence projection", "arousal projection", "judged"],
                [
                    [
                        s["direction"],
                        fmt(s.get("alpha")),
                        fmt(s.get("valence_proj")),
                        fmt(s.get("arousal_proj")),
                        ", ".join(f"{k} {v}" for k, v in (s.get("judged") or {}).items()),
                    ]
                    for s in steer
                ],
                "projection of the steered replies on the VA axes",
                [f"{s['direction']}@{fmt(s.get('alpha'))}" for s in steer],
            )
        )
    behaviour = d.get("behaviour") or {}
    curves = [
        (name, label, r)
        for name, label, key in (
            ("refusal", "refusal (harmful prompts)", "curve"),
            ("refusal", "refusal (fluent replies)", "fluent_curve"),
            ("sycophancy", "sycophancy", "curve"),
        )
        for r in (behaviour.get(name) or {}).get(key) or []
    ]
    if curves:
        verdicts = "; ".join(
            f"{b['claim']}: {b['verdict']} (slope {fmt(b['slope'], 4)} per alpha [{fmt(b['low'], 4)}, {fmt(b['high'], 4)}], n {b['n']})"
            for k, b in behaviour.items()
            if k != "rule"
        )
        out.append(
            Table(
                "table-va-behaviour",
                ["probe", "direction", "alpha", "mean [95% interval]", "n"],
                [
                    [
                        label,
                        r["direction"],
                        fmt(r["alpha"]),
                        f"{fmt(r['mean'])} [{fmt(r['low'])}, {fmt(r['high'])}]",
                        str(r["n"]),
                    ]
                    for _, label, r in curves
                ],
                f"{verdicts}. Rule: {behaviour.get('rule', '')}",
                [f"{label}:{r['direction']}@{fmt(r['alpha'])}" for _, label, r in curves],
            )
        )
    return out


def claim_cell(m: dict[str, Any] | None) -> str:
    """One model's result for one claim: ``verdict: value [low, high], n N`` (``not run`` without data)."""
    if m is None:
        return "not run"
    value = "-" if m["value"] is None else str(m["value"])
    ci = "" if m["low"] is None else f" [{m['low']:+.3f}, {m['high']:+.3f}]"
    return f"{m['verdict']}: {value}{ci}, n {m['n']}"


def claims_tables(d: dict[str, Any]) -> list[Table]:
    """The claims table of :func:`circuits.runs.replicate.replicate` (a column per model), then how each
    claim is read."""
    models = d["models"]
    keys = [c["key"] for c in d["claims"]]
    return [
        Table(
            "table-claims",
            ["claim", "paper", "published", *models],
            [
                [c["claim"], c["paper"], c["published"], *(claim_cell(c["results"][m]) for m in models)]
                for c in d["claims"]
            ],
            "Each cell: verdict, the measured value, its 95% interval in brackets where there is one, and n. "
            "Papers: A emotion circuits, B Emotion Vectors, C valence-arousal subspace.",
            keys,
        ),
        Table(
            "table-claims-rules",
            ["claim", "how it is read", *models],
            [
                [c["claim"], c["rule"], *((c["results"][m] or {}).get("detail", "") for m in models)]
                for c in d["claims"]
            ],
            keys=keys,
        ),
    ]


TABLES: dict[str, Callable[[dict[str, Any]], list[Table]]] = {
    "provenance": provenance_tables,
    "probe": probe_tables,
    "circuits": circuit_tables,
    "evaluation": evaluation_tables,
    "dose": dose_tables,
    "validity": validity_tables,
    "va": va_tables,
    "claims": claims_tables,
}


def _notes(section: str, d: dict[str, Any]) -> list[str]:
    if section == "provenance":
        return [f"Not recorded by this run: {m}." for m in d.get("missing") or []]
    if section == "evaluation":
        return [f"Replies read from {d.get('replies_source') or 'nowhere: none recorded'}."]
    if section == "circuits" and not d.get("faithfulness"):
        return ["Faithfulness was not measured on this run: " + MAKES["circuits"].split("; ")[1] + "."]
    if section == "probe" and not d.get("null"):
        return ["No permuted-label null in this run: `emocircuits nulls --run RUN`."]
    made = f" Made by `{shlex.join(d['command'])}`." if d.get("command") else ""
    if section == "dose" and d.get("file"):
        return [f"From {d['file']}.{made}"]
    if section == "validity":
        sizes = ", ".join(f"{k} {v}" for k, v in d["n"].items())
        return [f"From {d['file']}. Rows: {sizes}.", f"Rule: {d['rule']}"]
    if section == "va" and d.get("dir"):
        return [f"VA run: {d['dir']}.{made}"]
    return []


# --- figures ----------------------------------------------------------------------------------------


def probe_plot(d: dict[str, Any]) -> Any:
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=2, subplot_titles=["probe accuracy", "cross-context cosine"])
    x = d["layers"]
    null = d.get("null")
    if null:
        name = f"null probe ({null['read_point']}, min-max)"
        add_band(fig, x, null["lo"], null["hi"], name, color="#999999", legendgroup=name, row=1, col=1)
        fig.add_trace(
            go.Scatter(
                x=x, y=null["mean"], mode="lines", line=dict(dash="dot", color="#777777"), name="null probe (mean)"
            ),
            row=1,
            col=1,
        )
    for i, (rp, ys) in enumerate((d.get("probe_accuracy") or {}).items()):
        fig.add_trace(
            go.Scatter(x=x, y=ys, mode="lines+markers", name=f"probe {rp}", line=dict(color=COLORS[i])), row=1, col=1
        )
    ncos = d.get("null_cosine")
    if ncos:
        add_band(
            fig,
            x,
            ncos["lo"],
            ncos["hi"],
            f"null cosine ({ncos['context']}, {ncos['read_point']})",
            color="#bbbbbb",
            legendgroup=f"null cosine ({ncos['context']}, {ncos['read_point']})",
            row=1,
            col=2,
        )
    k = 2
    for c, by in (d.get("cosine") or {}).items():
        for rp, ys in by.items():
            fig.add_trace(
                go.Scatter(
                    x=x,
                    y=ys,
                    mode="lines+markers",
                    name=f"cosine by {c} ({rp})",
                    line=dict(color=COLORS[k % len(COLORS)]),
                ),
                row=1,
                col=2,
            )
            k += 1
    fig.update_xaxes(title_text="layer")
    fig.update_layout(height=420, title="Emotion directions: probe accuracy and cross-context cosine")
    return fig


def circuit_plots(d: dict[str, Any]) -> Any:
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    emotions = d["emotions"]
    has_f = bool(d.get("faithfulness"))
    titles = ["neurons per layer", "heads per layer", "Jaccard: neurons", "Jaccard: heads"]
    fig = make_subplots(rows=2, cols=2, subplot_titles=titles, vertical_spacing=0.16)
    layers = list(range(d["n_layers"]))
    for i, e in enumerate(emotions):
        for c, kind in enumerate(("neurons", "heads"), start=1):
            fig.add_trace(
                go.Bar(
                    x=layers,
                    y=d["units"][e][kind],
                    name=e,
                    legendgroup=e,
                    showlegend=c == 1,
                    marker_color=COLORS[i % len(COLORS)],
                ),
                row=1,
                col=c,
            )
    for c, kind in enumerate(("neurons", "heads"), start=1):
        m = d["jaccard"][kind]
        fig.add_trace(
            go.Heatmap(
                z=m,
                x=list(emotions),
                y=list(emotions),
                zmin=0,
                zmax=1,
                colorscale="Blues",
                showscale=c == 2,
                text=[[fmt(v, 2) for v in r] for r in m],
                texttemplate="%{text}",
                colorbar=dict(y=0.22, len=0.42, title="Jaccard"),
            ),
            row=2,
            col=c,
        )
        fig.update_yaxes(autorange="reversed", row=2, col=c)
    fig.update_layout(
        barmode="group",
        height=760,
        title="Circuits: units per layer and overlap across emotions",
        legend=dict(y=1, yanchor="top"),
    )
    figs = [fig]
    if has_f:
        f = d["faithfulness"]
        names = list(f)
        g = go.Figure()
        g.add_trace(go.Bar(x=names, y=[f[e].get("faithfulness") for e in names], name="circuit"))
        g.add_trace(
            go.Bar(
                x=names,
                y=[f[e].get("random_mean") for e in names],
                name="random circuits (mean, std)",
                error_y=dict(type="data", array=[f[e].get("random_std") or 0 for e in names]),
            )
        )
        g.update_layout(
            barmode="group",
            height=380,
            yaxis_title="faithfulness",
            title="Faithfulness against random circuits of equal size",
        )
        figs.append(g)
    return figs


def evaluation_plot(d: dict[str, Any]) -> Any:
    from circuits.figures.evaluation import accuracy_figure

    return accuracy_figure(d["methods"], d["emotions"], d.get("fluency") is not None, height=400)


def va_plots(d: dict[str, Any]) -> list[Any]:
    import plotly.graph_objects as go

    c = d.get("circumplex") or {}
    fig = go.Figure()
    if c.get("center") is not None and c.get("radius") is not None:
        n = 100
        fig.add_trace(
            go.Scatter(
                x=[c["center"][0] + c["radius"] * math.cos(2 * math.pi * i / n) for i in range(n + 1)],
                y=[c["center"][1] + c["radius"] * math.sin(2 * math.pi * i / n) for i in range(n + 1)],
                mode="lines",
                name="circle fit",
                line=dict(dash="dot"),
            )
        )
    for e, (v, a) in (d.get("projection") or {}).items():
        fig.add_trace(go.Scatter(x=[v], y=[a], mode="markers+text", text=[e], name=e, textposition="top center"))
    fig.update_layout(
        height=460,
        title=f"Emotions in the valence-arousal plane (layer {d.get('layer')})",
        xaxis_title="valence axis",
        yaxis_title="arousal axis",
    )
    figs = [fig]
    steer = d.get("steering") or []
    if steer:
        g = go.Figure()
        for name in dict.fromkeys(s["direction"] for s in steer):
            rs = [s for s in steer if s["direction"] == name]
            for key in ("valence_proj", "arousal_proj"):
                g.add_trace(
                    go.Scatter(
                        x=[r["alpha"] for r in rs],
                        y=[r.get(key) for r in rs],
                        mode="lines+markers",
                        name=f"steer {name}: {key}",
                        line=dict(dash="dot" if name.startswith("random") else "solid"),
                    )
                )
        g.update_layout(
            height=420, title="VA steering: projection of the replies on the axes", xaxis_title="alpha (x residual RMS)"
        )
        figs.append(g)
    return figs


FIGURES: dict[str, Callable[[dict[str, Any]], Any]] = {
    "probe": probe_plot,
    "circuits": circuit_plots,
    "evaluation": evaluation_plot,
    "dose": dose_response_figure,
    "va": va_plots,
}


class _FigureWriter:
    """Figures as ``<div>``s of one page: plotly.js inlined in the first, reused by the later ones."""

    def __init__(self) -> None:
        self.n = 0

    def __call__(self, fig: Any) -> str:
        self.n += 1
        div = fig.to_html(
            include_plotlyjs=self.n == 1, full_html=False, div_id=f"figure-{self.n}", config={"displaylogo": False}
        )
        return f"<div class='figure'>{div}</div>"


# --- replies ----------------------------------------------------------------------------------------


def _replies_html(d: dict[str, Any]) -> str:
    replies = d.get("replies") or {}
    if not replies:
        return "<p class='note'>No replies recorded for this evaluation.</p>"
    parts = ["<h3 id='replies'>Replies behind each cell</h3>"]
    for m, by in replies.items():
        n = sum(len(v) for v in by.values())
        inner = []
        for e, rs in by.items():
            hits = sum(r.get("verdict") == e for r in rs)
            items = "".join(
                f"<li class='{'hit' if r.get('verdict') == e else 'miss'}'>[{_esc(r.get('valence', ''))}; judged "
                f"{_esc(r.get('verdict'))}] <span class='reply'>{_esc(r.get('text', ''))}</span></li>"
                for r in rs
            )
            inner.append(
                f"<details class='cell' data-method='{_esc(m)}' data-emotion='{_esc(e)}'><summary>{_esc(e)}: "
                f"{len(rs)} replies, {hits} judged {_esc(e)}</summary><ol class='replies'>{items}</ol>"
                f"</details>"
            )
        parts.append(
            f"<details class='method' data-method='{_esc(m)}'><summary><b>{_esc(m)}</b> ({n} replies)"
            f"</summary>{''.join(inner)}</details>"
        )
    return "".join(parts)


# --- pages ------------------------------------------------------------------------------------------


def _absent(section: str, data: dict[str, Any]) -> str:
    return (data.get("absent") or {}).get(section) or MAKES[section]


def _views_html(views: Sequence[dict[str, Any]]) -> str:
    return (
        "<ul>"
        + "".join(f"<li><a href='{_esc(v['path'])}'>{_esc(v.get('title') or v['path'])}</a></li>" for v in views)
        + "</ul>"
    )


def report_html(data: dict[str, Any]) -> str:
    """The whole page (see the module docstring for ``data``); works offline: no external script, style or link."""
    title = data.get("title") or f"Run report: {data.get('run', '')}"
    figure = _FigureWriter()
    toc, body = [], []
    for key, heading in SECTIONS:
        d = data.get(key)
        present = bool(d)
        toc.append(
            f"<li class='{'present' if present else 'absent-entry'}'><a href='#{key}'>{_esc(heading)}</a>"
            + ("" if present else " (absent)")
            + "</li>"
        )
        parts = [f"<section id='{key}' class='{'present' if present else 'absent-section'}'><h2>{_esc(heading)}</h2>"]
        if not present:
            parts.append(f"<p class='absent'>Absent from this run. Made by {_code(_absent(key, data))}.</p></section>")
            body.append("".join(parts))
            continue
        if key == "views":
            parts.append(_views_html(d))
        else:
            parts += [f"<p class='note'>{_code(n)}</p>" for n in _notes(key, d)]
            figs = FIGURES.get(key)
            drawn = figs(d) if figs else []
            drawn = drawn if isinstance(drawn, list) else [drawn]
            tables = TABLES[key](d)
            parts += [t.html() for t in tables]
            parts += [figure(f) for f in drawn]
            if key == "evaluation":
                parts.append(_replies_html(d))
        parts.append("</section>")
        body.append("".join(parts))
    head = (
        f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{_esc(title)}</title>"
        f"<meta name='viewport' content='width=device-width, initial-scale=1'><style>{_CSS}</style></head>"
    )
    return (
        f"{head}<body><h1>{_esc(title)}</h1><p class='note'>Every number on this page is read from the run's "
        f"files; sections without data say which command makes them.</p>"
        f"<nav class='toc'><b>Contents</b><ol>{''.join(toc)}</ol></nav>{''.join(body)}</body></html>"
    )


def report_markdown(data: dict[str, Any]) -> str:
    """The same content as :func:`report_html` as Markdown tables (no figures, no replies), for findings pages."""
    title = data.get("title") or f"Run report: {data.get('run', '')}"
    out = [f"# {title}", ""]
    if data.get("intro"):
        out += [str(data["intro"]), ""]
    for key, heading in SECTIONS:
        d = data.get(key)
        out += [f"## {heading}", ""]
        if not d:
            out += [f"Absent from this run. Made by {_absent(key, data)}.", ""]
            continue
        if key == "views":  # named, not linked: a docs page does not sit beside the run's files
            out += ["In the run directory (open them from its report.html):", ""]
            out += [f"- `{v.get('title') or v['path']}`" for v in d] + [""]
            continue
        out += [n for n in _notes(key, d) if not n.startswith("Replies read")] or []
        if out[-1] != "":
            out.append("")
        for t in TABLES[key](d):
            out += [t.markdown(), ""]
        if key == "evaluation":
            n = sum(len(v) for by in (d.get("replies") or {}).values() for v in by.values())
            out += [f"{n} replies behind these cells are in the HTML report (from {d.get('replies_source')}).", ""]
    return "\n".join(out).rstrip() + "\n"
