"""``emocircuits replicate``: one table of the three papers' claims across models, read from runs' artifacts.

Each claim (:data:`CLAIMS`) has the paper's number, a measure read from a finished run (a discovery run
with its evaluation, dose-response and validity folders; a VA run for the valence-arousal claims), n, a
95% interval and a verdict: *holds*, *does not hold* or *cannot tell at this n*, by the rule written
next to it. Nothing is recomputed with a model: every number comes from the files the runs wrote, so the
table can be rebuilt anywhere the runs are.
"""

from __future__ import annotations

import csv
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from circuits.core.artifacts import InputError, write_json_atomic, write_text_atomic
from circuits.core.readers import read_json
from circuits.core.sev import recommendation_key
from circuits.core.stats import wilson_interval
from circuits.runs import layout
from circuits.runs.report import circuits_section, find_dose, open_run, probe_section

HOLDS, FAILS, UNSURE = "holds", "does not hold", "cannot tell at this n"
Z95 = 1.959963984540054


@dataclass(frozen=True)
class Claim:
    """One claim of the papers: what it says, the paper's number, and how a run is read against it."""

    key: str
    paper: str
    """Which paper (A: emotion circuits, B: Emotion Vectors, C: valence-arousal subspace)."""
    text: str
    published: str
    """The paper's number, as published (text: some claims are qualitative)."""
    rule: str
    measure: Callable[["Sources"], dict[str, Any] | None]
    """Sources -> ``{"value", "n", "low", "high", "verdict", "detail"}``, or None when the runs lack the data."""


@dataclass
class Sources:
    """The artifacts of one model: its discovery run (``run``) and its VA run (``va``), either may be None."""

    model: str
    run: Any = None
    va: dict[str, Any] | None = None
    va_dir: str | None = None
    va_self: dict[str, Any] | None = None
    """A VA run whose ratings are the model's own self-reports (``va --self-report``)."""
    va_self_dir: str | None = None


def _verdict(low: float, high: float, side: float = 0.0) -> str:
    """HOLDS when the interval lies above ``side``, FAILS when below, else UNSURE."""
    return HOLDS if low > side else FAILS if high < side else UNSURE


def _cannot_tell(n: int, why: str) -> dict[str, Any]:
    """A measure that has its data but nothing to test in it (``why`` says what)."""
    return {"value": None, "n": n, "low": None, "high": None, "verdict": UNSURE, "detail": why}


def _bootstrap_mean(x: np.ndarray, seed: int = 0, n_boot: int = 2000) -> tuple[float, float]:
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, len(x), size=(n_boot, len(x)))].mean(1)
    lo, hi = np.quantile(means, [0.025, 0.975])
    return float(lo), float(hi)


# ------------------------------------------------------------------------------------------ measures
def _n_groups(src: Sources) -> int | None:
    """The (scenario, valence) groups behind a run's directions (None when the summary does not say)."""
    groups = (src.run.summary.get("directions") or {}).get("n_groups")
    return int(groups) if groups else None


def _emergence(src: Sources) -> dict[str, Any] | None:
    probe = probe_section(src.run) if src.run is not None else None
    if not probe or "mlp" not in probe["probe_accuracy"] or not _n_groups(src):
        return None
    acc = probe["probe_accuracy"]["mlp"]
    emotions = src.run.summary["config"]["emotions"]
    n = _n_groups(src) * len(emotions)
    half = (1 / len(emotions) + max(acc)) / 2  # half-way from chance to the best layer
    bounds = [wilson_interval(round(a * n), n) for a in acc]
    depth = len(acc) - 1 or 1

    def first(ok: Callable[[int], bool]) -> int | None:
        return next((L for L in range(len(acc)) if ok(L)), None)

    value, early, late = (
        first(lambda L: acc[L] >= half),
        first(lambda L: bounds[L][1] >= half),
        first(lambda L: bounds[L][0] >= half),
    )
    if value is None or max(acc) - 1 / len(emotions) < 0.1:
        return _cannot_tell(n, "no layer reads the emotions well")
    lo, hi = early / depth, (late if late is not None else len(acc) - 1) / depth
    verdict = HOLDS if 0.15 <= lo and hi <= 0.6 else FAILS if hi < 0.15 or lo > 0.6 else UNSURE
    return {
        "value": round(value / depth, 3),
        "n": n,
        "low": lo,
        "high": hi,
        "verdict": verdict,
        "detail": f"probe accuracy (mlp read point) first reaches {half:.2f}, half-way from chance to its best "
        f"({max(acc):.2f}), at layer {value} of 0-{depth}; interval: the layers where its Wilson 95% bounds cross it",
    }


def _context_agnostic(src: Sources) -> dict[str, Any] | None:
    probe = probe_section(src.run) if src.run is not None else None
    if not probe or "theme" not in probe.get("cosine", {}) or not probe.get("null_cosine"):
        return None
    cos = np.array(probe["cosine"]["theme"]["mlp"])
    null_hi = np.array(probe["null_cosine"]["hi"])
    half = len(cos) // 2  # the second half of the network, where the papers read the directions
    margin = cos[half:] - null_hi[half:]
    n = _n_groups(src)
    return {
        "value": round(float(cos[half:].mean()), 3),
        "n": n,
        "low": float(cos[half:].min()),
        "high": float(cos[half:].max()),
        "verdict": HOLDS if margin.min() > 0 else FAILS if margin.max() < 0 else UNSURE,
        "detail": f"layers {half}-{len(cos) - 1}: cosine across themes min {cos[half:].min():.2f}, null max "
        f"{null_hi[half:].max():.2f}{_validity_note(src)}",
    }


def _validity_note(src: Sources) -> str:
    """The run's validity verdict per layer band (``emocircuits validity``), when it was made: what the
    directions encode is a separate question from whether they are the same across contexts."""
    path = src.run.file(layout.VALIDITY_DIR) / layout.VALIDITY_JSON
    if not path.is_file():
        return ""
    bands = read_json(path).get("bands") or []
    said = ", ".join(f"layers {b['layers'][0]}-{b['layers'][1]} {b['verdict']}" for b in bands)
    return f"; emotion state or instruction word (validity): {said}" if said else ""


def _sharing(src: Sources) -> dict[str, Any] | None:
    circ = circuits_section(src.run) if src.run is not None else None
    if not circ or len(circ["emotions"]) < 2:
        return None
    E = len(circ["emotions"])
    off = [(i, j) for i in range(E) for j in range(i + 1, E)]
    nj = np.array([circ["jaccard"]["neurons"][i][j] for i, j in off])
    hj = np.array([circ["jaccard"]["heads"][i][j] for i, j in off])
    diff = hj - nj
    lo, hi = _bootstrap_mean(diff)
    return {
        "value": f"neurons {nj.mean():.2f}, heads {hj.mean():.2f}",
        "n": len(off),
        "low": lo,
        "high": hi,
        "verdict": _verdict(lo, hi),
        "detail": f"mean Jaccard over {len(off)} emotion pairs; interval: heads minus neurons",
    }


def _ablation(src: Sources) -> dict[str, Any] | None:
    if src.run is None or not src.run.file("sweeps.csv").is_file():
        return None
    cells: dict[tuple, dict[str, float]] = {}
    with open(src.run.file("sweeps.csv"), encoding="utf-8") as fh:
        for r in csv.DictReader(fh):
            if r["mode"] == "zero":
                cells.setdefault((r["emotion"], r["layer"], r["kind"], r["k"]), {})[r["selection"]] = -float(
                    r["delta_s"]
                )
    pairs = np.array([[c["top"], c["random"]] for c in cells.values() if {"top", "random"} <= set(c)])
    if len(pairs) == 0:
        return None
    diff = pairs[:, 0] - pairs[:, 1]
    lo, hi = _bootstrap_mean(diff)
    rnd = pairs[:, 1].mean()
    ratio = (
        f"; top / random {pairs[:, 0].mean() / rnd:.1f}x"
        if rnd > 1e-6
        else "; random ablations do not drop it on average"
    )
    return {
        "value": f"drop {pairs[:, 0].mean():.3f} vs random {pairs[:, 1].mean():.3f}",
        "n": len(pairs),
        "low": lo,
        "high": hi,
        "verdict": _verdict(lo, hi),
        "detail": f"(emotion, layer, kind) cells of the zero-ablation sweep; interval: top minus random drop{ratio}",
    }


def _evaluation(src: Sources) -> dict[str, Any] | None:
    if src.run is None:
        return None
    path = src.run.file(layout.EVALUATION_DIR) / layout.EVALUATION_JSON
    return read_json(path) if path.is_file() else None


def _difference(a: dict[str, Any], b: dict[str, Any]) -> tuple[float, float, float]:
    """Difference of two accuracies (a - b) and Newcombe's 95% interval (from the Wilson intervals)."""
    pa, na, pb, nb = a["accuracy"], int(a["n"]), b["accuracy"], int(b["n"])
    la, ua = wilson_interval(round(pa * na), na)
    lb, ub = wilson_interval(round(pb * nb), nb)
    d = pa - pb
    return d, d - math.sqrt((pa - la) ** 2 + (ub - pb) ** 2), d + math.sqrt((ua - pa) ** 2 + (pb - lb) ** 2)


def _circuit_vs(other: str, margin: float) -> Callable[[Sources], dict[str, Any] | None]:
    def measure(src: Sources) -> dict[str, Any] | None:
        ev = _evaluation(src)
        m = (ev or {}).get("methods", {})
        if "circuit" not in m or other not in m:
            return None
        d, lo, hi = _difference(m["circuit"], m[other])
        return {
            "value": f"{m['circuit']['accuracy']:.2f} vs {m[other]['accuracy']:.2f}",
            "n": int(m["circuit"]["n"]),
            "low": lo,
            "high": hi,
            "verdict": _verdict(lo, hi, -margin) if margin else _verdict(lo, hi),
            "detail": f"fluent accuracy (judge {ev.get('judge')}); interval: circuit minus {other}",
        }

    return measure


def _ev_strength(src: Sources) -> dict[str, Any] | None:
    path = find_dose(src.run) if src.run is not None else None
    if path is None:
        return None
    dose = read_json(path)
    ev = (dose.get("methods") or {}).get("emotion_vector")
    if not ev:
        return None
    match = ev.get("match_prompting") or {}
    n = int((dose.get("dev") or {}).get("items_per_point") or 0)
    strengths = [p["strength"] for p in ev.get("points", [])]
    s = match.get("strength")
    if s is None:
        return {
            "value": None,
            "n": n,
            "low": None,
            "high": None,
            "verdict": FAILS if strengths and max(strengths) >= 4 else UNSURE,
            "detail": f"never reaches prompting at strengths {strengths}",
        }
    return {
        "value": round(float(s), 2),
        "n": n,
        "low": None,
        "high": None,
        "verdict": HOLDS if s <= 2 else FAILS,
        "detail": f"perplexity there {match.get('perplexity', float('nan')):.1f}; prompting {match.get('target', float('nan')):.2f}",
    }


def _va_circle(src: Sources, self_report: bool = False) -> dict[str, Any] | None:
    va = src.va_self if self_report else src.va
    if not va or not va.get("ratings") or not va.get("projection"):
        return None
    ratings, proj = va["ratings"], va["projection"]
    emotions = [e for e in va["emotions"] if e in ratings and e in proj]
    r = np.array([ratings[e] for e in emotions], float)
    p = np.array([proj[e] for e in emotions], float)
    if len(emotions) < 3 or (np.ptp(r, axis=0) == 0).any():
        return _cannot_tell(
            len(emotions),
            "fewer than 3 rated emotions, or the ratings of an axis are all the same: no quadrants to compare",
        )
    same = ((r - r.mean(0) > 0) == (p - p.mean(0) > 0)).all(1)  # the quadrant around each cloud's centre
    k, n = int(same.sum()), len(emotions)
    lo, hi = wilson_interval(k, n)
    return {
        "value": round(k / n, 3),
        "n": n,
        "low": lo,
        "high": hi,
        "verdict": _verdict(lo, hi, 0.25),
        "detail": f"emotions in their rated quadrant (chance 0.25); circle residual "
        f"{(va.get('circumplex') or {}).get('residual', float('nan')):.2f}",
    }


def _va_heldout(src: Sources, self_report: bool = False) -> dict[str, Any] | None:
    held = ((src.va_self if self_report else src.va) or {}).get("fit", {}).get("heldout")
    if not held:
        return None
    n = int(held["n"])
    out = {}
    if any(held["spearman"].get(a) is None for a in ("valence", "arousal")):
        return _cannot_tell(n, "the ratings of an axis are all the same: no correlation to test")
    for axis in ("valence", "arousal"):
        rho = float(held["spearman"][axis])
        z, se = math.atanh(max(min(rho, 0.999999), -0.999999)), 1.06 / math.sqrt(max(n - 3, 1))
        out[axis] = (rho, math.tanh(z - Z95 * se), math.tanh(z + Z95 * se))
    lo = min(out["valence"][1], out["arousal"][1])
    hi = min(out["valence"][2], out["arousal"][2])
    return {
        "value": f"R^2 {held['r2']['valence']:.2f} / {held['r2']['arousal']:.2f}",
        "n": n,
        "low": lo,
        "high": hi,
        "verdict": _verdict(lo, hi),
        "detail": "valence / arousal, each emotion left out; interval: the weaker axis' Spearman (Fisher z)",
    }


def _behaviour(name: str) -> Callable[[Sources], dict[str, Any] | None]:
    def measure(src: Sources) -> dict[str, Any] | None:
        b = (src.va or {}).get("behaviour", {}).get(name)
        if not b:
            return None
        return {
            "value": f"slope {b['slope']:+.4f} per alpha",
            "n": int(b["n"]),
            "low": float(b["low"]),
            "high": float(b["high"]),
            "verdict": b["verdict"],
            "detail": f"{b['reason']}; random slopes {', '.join(f'{v:+.4f}' for v in b['random_slopes'].values())}",
        }

    return measure


CLAIMS: tuple[Claim, ...] = (
    Claim(
        "emergence",
        "A",
        "emotion directions emerge mid-network",
        "clusters from ~layer 9 of 28 (0.32 of the depth), separated by ~12 (0.43)",
        "value: relative depth of the first layer whose probe accuracy reaches half-way from chance to the "
        "best layer's; interval: the first layers where the accuracy's Wilson 95% upper and lower bounds reach "
        "it; holds when the interval lies between 0.15 and 0.6 of the depth, does not hold when it lies outside",
        _emergence,
    ),
    Claim(
        "context_agnostic",
        "A",
        "the directions are context-agnostic",
        "one direction per emotion across scenarios (no number published)",
        "value: mean cosine between directions from different themes over the second half of the layers "
        "(range: min to max); holds when every such layer's cosine exceeds its null's maximum",
        _context_agnostic,
    ),
    Claim(
        "heads_shared",
        "A",
        "heads are shared across emotions, neurons are specific",
        "circuit overlap: neurons ~0.06, heads ~0.45",
        "interval: bootstrap over emotion pairs of (heads' Jaccard - neurons' Jaccard); holds above 0",
        _sharing,
    ),
    Claim(
        "ablation",
        "A",
        "ablating the top components drops the emotion score more than random ones",
        "2 top neurons already drop it sharply; top components matter over 30x more",
        "interval: bootstrap over the sweep's cells of (top drop - random drop); holds above 0",
        _ablation,
    ),
    Claim(
        "circuit_vs_prompting",
        "A",
        "circuit modulation matches prompting",
        "99.65% vs 98.96% (Llama-3.2-3B); Qwen2.5-7B about 66% at scale 2",
        "interval: Newcombe 95% of (circuit - prompting) fluent accuracy; holds above -0.05 (within 5 points "
        "or better), does not hold below it",
        _circuit_vs("prompting", 0.05),
    ),
    Claim(
        "circuit_vs_direction",
        "A",
        "circuit modulation beats direction steering",
        "99.65% vs 91.22% (Llama-3.2-3B); direction under 5% for four emotions on Qwen2.5-7B",
        "interval: Newcombe 95% of (circuit - direction) fluent accuracy; holds above 0",
        _circuit_vs("direction", 0.0),
    ),
    Claim(
        "ev_strength",
        "B",
        "Emotion Vectors reach prompting at a fluent strength",
        "alpha 1-2 steers, 4x degenerates (repetition)",
        "value: the dose-response strength (interpolated) where EV's fluent accuracy reaches prompting's; "
        "holds at 2 or below, does not hold above 2 or when never reached by strength 4",
        _ev_strength,
    ),
    Claim(
        "va_circle",
        "C",
        "the emotions lie on a circle ordered by valence and arousal",
        "a circumplex in the fitted plane (qualitative)",
        "value: share of emotions whose projection lies in the quadrant of their ratings (around each cloud's "
        "centre); Wilson 95%; holds above chance (0.25)",
        _va_circle,
    ),
    Claim(
        "va_heldout",
        "C",
        "the VA axes predict emotions left out of the fit",
        "ridge on the top PCs to self-reports (held-out R^2 not published)",
        "value: R^2 of held-out predictions; interval: Fisher-z 95% of the weaker axis' Spearman; holds above 0",
        _va_heldout,
    ),
    Claim(
        "va_circle_self",
        "C",
        "the circle, with the model's own ratings",
        "the paper fits the axes to the model's self-reports",
        "as above, on a VA run made with --self-report (the emotions the model rated parseably)",
        lambda src: _va_circle(src, self_report=True),
    ),
    Claim(
        "va_heldout_self",
        "C",
        "held-out fit, with the model's own ratings",
        "(held-out R^2 not published)",
        "as above, on a VA run made with --self-report",
        lambda src: _va_heldout(src, self_report=True),
    ),
    Claim(
        "refusal",
        "C",
        "arousal up: refusal of harmful requests down",
        "harmful set 87% to 5%; random directions move under 3 points",
        "the VA run's trend rule (circuits.va.behaviour.TREND_RULE)",
        _behaviour("refusal"),
    ),
    Claim(
        "sycophancy",
        "C",
        "arousal up: sycophancy up",
        "78% to 84% (lowering: 78% to 61%); random directions move under 3 points",
        "the VA run's trend rule (circuits.va.behaviour.TREND_RULE)",
        _behaviour("sycophancy"),
    ),
)
"""The claims of the three papers the table reads, in order."""


# ------------------------------------------------------------------------------------------ the job
def gather_sources(runs: list[str | os.PathLike], vas: list[str | os.PathLike]) -> list[Sources]:
    """One :class:`Sources` per model, in the order first named: each discovery run, and each VA run
    matched to the run of the same model (a VA run without one stands alone; a run made with
    ``--self-report`` is the model's self-report VA run). Two runs of one kind for one model are
    refused: a table has one column per model."""
    by_model: dict[str, Sources] = {}
    for r in runs:
        run = open_run(r)
        model = str(recommendation_key((run.summary.get("model") or {}).get("name")))
        if model in by_model:
            raise InputError(f"--run {r}: a second run of model {model!r}; give one run per model")
        by_model[model] = Sources(model, run=run)
    for v in vas:
        path = Path(v) / "summary.json"
        if not path.is_file():
            raise InputError(f"--va {v}: not a VA run (no summary.json; made by `emocircuits va --out DIR`)")
        summary = read_json(path)
        model = str(recommendation_key((summary.get("model") or {}).get("name")))
        src = by_model.setdefault(model, Sources(model))
        self_report = bool((summary.get("config") or {}).get("self_report"))
        if (src.va_self if self_report else src.va) is not None:
            kind = "self-report " if self_report else ""
            raise InputError(f"--va {v}: a second {kind}VA run of model {model!r}; give one of each kind per model")
        if self_report:
            src.va_self, src.va_self_dir = summary, str(v)
        else:
            src.va, src.va_dir = summary, str(v)
    if not by_model:
        raise InputError("replicate: give at least one --run or --va")
    return list(by_model.values())


def _commands(src: Sources) -> list[str]:
    """The command lines behind a model's runs (as each artifact recorded it), each once."""
    out = []
    if src.run is not None:
        out.append(" ".join(src.run.summary.get("command") or []) or "(discovery command not recorded)")
        ev = _evaluation(src)
        if ev and ev.get("command"):
            out.append(" ".join(ev["command"]))
        dose = find_dose(src.run)
        if dose is not None and read_json(dose).get("command"):
            out.append(" ".join(read_json(dose)["command"]))
    for va in (src.va, src.va_self):
        if va is not None:
            out.append(" ".join(va.get("command") or []) or "(VA command not recorded)")
    return list(dict.fromkeys(out))


def replicate(runs: list[str | os.PathLike], vas: list[str | os.PathLike] = ()) -> dict[str, Any]:
    """The claims table over the runs: ``{"models", "claims": [{key, paper, claim, published, rule,
    results: {model: measure or None}}], "sources": {model: {"run", "va", "commands"}}}``."""
    sources = gather_sources(list(runs), list(vas))
    claims = []
    for c in CLAIMS:
        results = {}
        for src in sources:
            try:
                results[src.model] = c.measure(src)
            except (KeyError, TypeError, ValueError, IndexError) as err:
                raise InputError(
                    f"{src.model}: the artifacts for claim {c.key!r} are not as written ({err!r})"
                ) from err
        claims.append(
            {
                "key": c.key,
                "paper": c.paper,
                "claim": c.text,
                "published": c.published,
                "rule": c.rule,
                "results": results,
            }
        )
    return {
        "models": [s.model for s in sources],
        "claims": claims,
        "sources": {
            s.model: {
                "run": str(s.run.path) if s.run is not None else None,
                "va": s.va_dir,
                "va_self_report": s.va_self_dir,
                "commands": _commands(s),
            }
            for s in sources
        },
    }


PAPERS = {
    "A": "emotion circuits (Llama-3.2-3B-Instruct; Qwen2.5-7B appendix)",
    "B": "Emotion Vectors (arXiv 2502.04075)",
    "C": "valence-arousal subspace (arXiv 2604.03147)",
}


def replicate_markdown(table: dict[str, Any], title: str = "# The papers' claims across models") -> str:
    """The table as Markdown (the run report's claims tables, a column per model), then the commands
    behind each model's runs."""
    from circuits.figures.report_page import claims_tables

    lines = [
        title,
        "",
        "Generated by `emocircuits replicate` from the runs' artifacts; nothing here is typed by hand.",
        "",
    ]
    lines += ["Papers: " + "; ".join(f"{k}: {v}" for k, v in PAPERS.items()) + ".", ""]
    for t in claims_tables(table):
        lines += [t.markdown(), ""]
    lines += ["## The runs", ""]
    for m in table["models"]:
        s = table["sources"][m]
        lines.append(f"- **{m}**: run `{s['run']}`, VA run `{s['va']}`, self-report VA run `{s['va_self_report']}`")
        lines += [f"  - `{cmd}`" for cmd in s["commands"]]
    return "\n".join(lines) + "\n"


REPLICATE_JSON = "replicate.json"
REPLICATE_MD = "replicate.md"


def write_replicate(
    table: dict[str, Any], out: str | os.PathLike, markdown: str | os.PathLike | None = None
) -> list[Path]:
    """Write ``replicate.json`` and ``replicate.md`` into the folder ``out`` (and the Markdown also to
    ``markdown`` when given, e.g. a docs page); each file is written atomically."""
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    text = replicate_markdown(table)
    write_json_atomic(folder / REPLICATE_JSON, table)
    write_text_atomic(folder / REPLICATE_MD, text)
    paths = [folder / REPLICATE_JSON, folder / REPLICATE_MD]
    if markdown is not None:
        write_text_atomic(Path(markdown), text)
        paths.append(Path(markdown))
    return paths
