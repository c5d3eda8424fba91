"""bfloat16 against float32 on one model: does discovery and evaluation agree?

    .venv/bin/python benchmarks/bf16_agreement.py                      # SmolLM2, runs/bf16/, ~25 min on 2 cores
    .venv/bin/python benchmarks/bf16_agreement.py --analyse-only       # recompute the numbers from runs/bf16/

Runs ``emocircuits discover`` twice on the same SEV subset (``--dtype float32 --store-dtype float32``,
then ``--dtype bfloat16 --store-dtype bfloat16``), then ``emocircuits evaluate`` of each run on the same
test items with fixed strengths (no strength sweep, so both dtypes steer with the same strengths), each
command in a fresh process (``python -m circuits ...``, timed as a whole: model load included, so both
dtypes pay the same process start). Then, from the run folders (file names of
:mod:`circuits.runs.layout`, read through :class:`circuits.runs.rundir.Run`):

- Spearman of the head scores and of the neuron scores (``scores.safetensors``), over every
  (layer, emotion, unit) and per emotion;
- probe accuracy per layer and read point (``directions_evidence.json``): the largest difference and
  the layers that differ by more than 0.01;
- Jaccard overlap of each emotion's circuit units (``circuits/{emotion}.json``: neurons, heads, all);
- each method's judged accuracy (``evaluation/evaluation.json``) with a 95% Wilson interval, whether
  the bfloat16 accuracy lies inside the float32 interval, and, item by item (``replies.jsonl``), how
  many replies are identical and how many verdicts agree;
- the wall time of each command and of each step the commands record (``timings_s``).

Writes ``OUT/bf16_agreement.json`` (every number, the exact commands, n, model, judge) and
``OUT/bf16_agreement.md`` (the table), after every command, and prints the table.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from circuits.core.artifacts import write_text_atomic  # noqa: E402
from circuits.runs import layout  # noqa: E402
from circuits.runs.rundir import Run, evaluation_folder  # noqa: E402

DTYPES = ("float32", "bfloat16")

# the small-sweep settings of `make demo` (circuits.runs.demo.PRESETS["real"]["discover"]; its layer
# counts 2 spread over SmolLM2's 30 layers are layers 7 and 22), with a larger --limit, and without the
# steps whose results are not compared here and do not feed the circuits: the slow references (with 2
# of 30 layers measured the circuits use the gradient influence anyway), the direction nulls and
# faithfulness (on a loaded 2-core machine faithfulness alone took about 35 s per row)
DISCOVER_FLAGS = [
    "--reference-budget", "0",
    "--null-seeds", "0",
    "--faithfulness-rows", "0",
    "--influence-rows", "4",
    "--influence-alphas", "1.0",
    "--sweep-layers", "7", "22",
    "--sweep-ks", "16",
    "--sweep-seeds", "1",
    "--sweep-rows", "2",
    "--generation-rows", "0",
    "--no-figures",
]  # fmt: skip


def wilson(k: float, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """The 95% Wilson score interval of ``k`` successes in ``n``."""
    if n <= 0:
        return (float("nan"), float("nan"))
    p = k / n
    den = 1 + z * z / n
    mid = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return (max(0.0, mid - half), min(1.0, mid + half))


def spearman(a: Any, b: Any) -> float:
    from scipy.stats import spearmanr

    a = a.detach().float().flatten().numpy()
    b = b.detach().float().flatten().numpy()
    return float(spearmanr(a, b).statistic)


def jaccard(a: set, b: set) -> float:
    return len(a & b) / len(a | b) if (a or b) else 1.0


def commands(out: Path, args: argparse.Namespace) -> dict[str, dict[str, list[str]]]:
    cmds: dict[str, dict[str, list[str]]] = {}
    for dt in DTYPES:
        run = str(out / dt)
        common = ["--threads", str(args.threads), "--dtype", dt]
        cmds[dt] = {
            "discover": [
                "discover", "--model", args.model, "--out", run, "--replace", "--limit", str(args.limit),
                "--store-dtype", dt, *common, *DISCOVER_FLAGS,
            ],
            "evaluate": [
                "evaluate", "--run", run, "--limit", str(args.eval_limit), "--methods", *args.methods, *common,
            ],
        }  # fmt: skip
    return cmds


def run_command(argv: list[str], log: Path) -> dict[str, Any]:
    """``python -m circuits ARGV`` in a fresh process (its output appended to ``log``): wall time and status."""
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    t0 = time.perf_counter()
    with open(log, "a") as fh:
        fh.write(f"\n$ emocircuits {' '.join(argv)}\n")
        fh.flush()
        rc = subprocess.call([sys.executable, "-m", "circuits", *argv], cwd=ROOT, env=env, stdout=fh, stderr=fh)
    return {"wall_s": round(time.perf_counter() - t0, 2), "rc": rc}


# ------------------------------------------------------------------------------------------ analysis
def discovery_agreement(a: Run, b: Run) -> dict[str, Any]:
    out: dict[str, Any] = {}
    sa, sb = a.scores(), b.scores()
    emotions = list(a.summary["config"]["emotions"])
    for kind in ("heads", "neurons"):
        x, y = sa[kind], sb[kind]  # [layers, emotions, units]
        out[f"spearman_{kind}"] = {
            "all": spearman(x, y),
            "per_emotion": {e: spearman(x[:, i], y[:, i]) for i, e in enumerate(emotions)},
            "shape": list(x.shape),
        }
    pa, pb = a.evidence["probe_accuracy"], b.evidence["probe_accuracy"]
    probe = {}
    for rp in pa:
        fa, fb = pa[rp], pb[rp]
        diffs = [y - x for x, y in zip(fa, fb)]
        probe[rp] = {
            "float32": fa,
            "bfloat16": fb,
            "max_abs_diff": max(abs(d) for d in diffs),
            "mean_abs_diff": sum(abs(d) for d in diffs) / len(diffs),
            "layers_beyond_0.01": [i for i, d in enumerate(diffs) if abs(d) > 0.01 + 1e-9],
            "mean_float32": sum(fa) / len(fa),
            "mean_bfloat16": sum(fb) / len(fb),
        }
    out["probe_accuracy"] = probe
    ca, cb = a.circuits(), b.circuits()
    jac = {}
    for e in emotions:
        na = {(l, i) for l, ix in ca[e].neuron_index().items() for i in ix}
        nb = {(l, i) for l, ix in cb[e].neuron_index().items() for i in ix}
        ha = {(l, i) for l, ix in ca[e].head_index().items() for i in ix}
        hb = {(l, i) for l, ix in cb[e].head_index().items() for i in ix}
        ua = {("n", *u) for u in na} | {("h", *u) for u in ha}
        ub = {("n", *u) for u in nb} | {("h", *u) for u in hb}
        jac[e] = {
            "neurons": jaccard(na, nb),
            "heads": jaccard(ha, hb),
            "all": jaccard(ua, ub),
            "units_float32": len(ua),
            "units_bfloat16": len(ub),
        }
    out["jaccard"] = jac
    return out


def evaluation_agreement(a: Run, b: Run) -> dict[str, Any]:
    ea, eb = a.evaluation, b.evaluation
    out: dict[str, Any] = {"judge": ea.get("judge"), "methods": {}}
    ra = {_key(r): r for r in a.jsonl(str(evaluation_folder(a).relative_to(a.path) / layout.REPLIES_JSONL)) or []}
    rb = {_key(r): r for r in b.jsonl(str(evaluation_folder(b).relative_to(b.path) / layout.REPLIES_JSONL)) or []}
    for name, ma in ea["methods"].items():
        mb = eb["methods"].get(name)
        if mb is None:
            continue
        row: dict[str, Any] = {}
        for dt, m in (("float32", ma), ("bfloat16", mb)):
            n = int(m["n"])
            ci = m.get("accuracy_ci") or m.get("ci") or m.get("interval")
            source = "evaluation.json"
            if not ci:
                ci, source = wilson(m["accuracy"] * n, n), "Wilson (computed here)"
            row[dt] = {
                "accuracy": m["accuracy"],
                "n": n,
                "ci95": list(ci),
                "ci_source": source,
                "perplexity": m.get("perplexity"),
            }
        lo, hi = row["float32"]["ci95"]
        row["bf16_within_fp32_ci"] = bool(lo - 1e-12 <= row["bfloat16"]["accuracy"] <= hi + 1e-12)
        keys = [k for k in ra if k[0] == name and k in rb]
        row["paired_items"] = len(keys)
        row["identical_replies"] = sum(ra[k]["text"] == rb[k]["text"] for k in keys)
        row["same_verdict"] = sum(ra[k]["verdict"] == rb[k]["verdict"] for k in keys)
        out["methods"][name] = row
    out["chosen_strengths"] = {dt: e["config"] for dt, e in (("float32", ea), ("bfloat16", eb))}
    return out


def _key(r: dict[str, Any]) -> tuple:
    return (r.get("method"), r.get("label"), r.get("skeleton_id"), r.get("valence"))


def timings(run: Run) -> dict[str, Any]:
    t: dict[str, Any] = {"discover_steps": run.summary.get("timings_s")}
    ev = run.evaluation if evaluation_folder(run) is not None else None
    if ev:
        t["evaluate_steps"] = ev.get("timings_s")
        t["evaluate_methods"] = {k: m.get("timings_s") for k, m in ev["methods"].items()}
    return t


# ------------------------------------------------------------------------------------------ the table
def f3(x: float) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.3f}"


def markdown(res: dict[str, Any]) -> str:
    L: list[str] = [
        f"FAILED: `{f['step']}` in {f['dtype']} (exit {f['rc']} after {f['wall_s']:.0f} s; see commands.log): "
        "the numbers below are partial\n"
        for f in res.get("failures", [])
    ]
    d = res.get("discovery")
    if d:
        L += ["| measure (float32 vs bfloat16) | value |", "|---|---|"]
        for kind in ("heads", "neurons"):
            s = d[f"spearman_{kind}"]
            per = s["per_emotion"].values()
            L.append(
                f"| Spearman, {kind} scores ({' x '.join(map(str, s['shape']))}) | {f3(s['all'])} "
                f"(per emotion {f3(min(per))} to {f3(max(per))}) |"
            )
        for rp, p in d["probe_accuracy"].items():
            beyond = p["layers_beyond_0.01"]
            L.append(
                f"| probe accuracy per layer, {rp}: largest / mean abs. difference | {f3(p['max_abs_diff'])} / "
                f"{f3(p['mean_abs_diff'])}; layers beyond 0.01: {len(beyond)} of {len(p['float32'])}"
                f"{' (' + ', '.join(map(str, beyond)) + ')' if beyond else ''} |"
            )
        for e, j in d["jaccard"].items():
            L.append(
                f"| Jaccard of circuit units, {e}: all / neurons / heads | {f3(j['all'])} / {f3(j['neurons'])} / "
                f"{f3(j['heads'])} ({j['units_float32']} / {j['units_bfloat16']} units) |"
            )
        mean_all = sum(j["all"] for j in d["jaccard"].values()) / len(d["jaccard"])
        L.append(f"| Jaccard of circuit units, mean over emotions | {f3(mean_all)} |")
    ev = res.get("evaluation")
    if ev:
        L += [
            "",
            "| method | float32 accuracy [95% CI] | bfloat16 accuracy [95% CI] | bf16 inside fp32 CI | "
            "identical replies | same verdict |",
            "|---|---|---|---|---|---|",
        ]
        for name, r in ev["methods"].items():
            a, b = r["float32"], r["bfloat16"]
            L.append(
                f"| {name} | {f3(a['accuracy'])} [{f3(a['ci95'][0])}, {f3(a['ci95'][1])}] (n {a['n']}) | "
                f"{f3(b['accuracy'])} [{f3(b['ci95'][0])}, {f3(b['ci95'][1])}] (n {b['n']}) | "
                f"{'yes' if r['bf16_within_fp32_ci'] else 'NO'} | {r['identical_replies']} / {r['paired_items']} | "
                f"{r['same_verdict']} / {r['paired_items']} |"
            )
    t = res.get("wall_s")
    if t:
        L += ["", "| command | float32 | bfloat16 | ratio fp32 / bf16 |", "|---|---|---|---|"]
        for step in ("discover", "evaluate"):
            if all(step in t.get(dt, {}) for dt in DTYPES):
                a, b = t["float32"][step], t["bfloat16"][step]
                L.append(f"| `{step}` (whole command, s) | {a:.0f} | {b:.0f} | {a / b:.2f}x |")
        for dt_key, label in (("discover_steps", "discover"), ("evaluate_steps", "evaluate")):
            sa = (res.get("timings", {}).get("float32") or {}).get(dt_key) or {}
            sb = (res.get("timings", {}).get("bfloat16") or {}).get(dt_key) or {}
            for k in sa:
                if k in sb and sa[k] and sb[k]:
                    L.append(f"| {label}: {k} (s) | {sa[k]:.1f} | {sb[k]:.1f} | {sa[k] / sb[k]:.2f}x |")
    return "\n".join(L) + "\n"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="smollm2-135m")
    p.add_argument("--out", default="runs/bf16")
    p.add_argument("--limit", type=int, default=12, help="train scenarios of discover")
    p.add_argument("--eval-limit", type=int, default=4, help="test scenarios of evaluate")
    p.add_argument("--methods", nargs="+", default=["prompting", "neutral", "direction", "emotion_vector", "circuit"])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--analyse-only", action="store_true", help="read the runs already in --out")
    p.add_argument(
        "--steps",
        nargs="+",
        choices=("discover", "evaluate"),
        default=["discover", "evaluate"],
        help="commands to run (evaluate alone: on the runs already in --out, keeping their recorded times)",
    )
    args = p.parse_args()

    out = (ROOT / args.out) if not Path(args.out).is_absolute() else Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    log = out / "commands.log"
    cmds = commands(out.relative_to(ROOT) if out.is_relative_to(ROOT) else out, args)
    res_path = out / "bf16_agreement.json"
    reuse = args.analyse_only or "discover" not in args.steps
    res: dict[str, Any] = json.loads(res_path.read_text()) if reuse and res_path.is_file() else {}
    res.update(
        date=_dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        model=args.model,
        threads=args.threads,
        sizes={"discover_limit": args.limit, "evaluate_limit": args.eval_limit, "methods": args.methods},
    )
    res.setdefault("commands", {dt: {} for dt in DTYPES})
    if not isinstance(res.get("script"), list):
        res["script"] = [res["script"]] if res.get("script") else []
    res["script"].append("benchmarks/bf16_agreement.py " + " ".join(sys.argv[1:]))
    for dt, c in cmds.items():
        for k in args.steps:
            res["commands"][dt][k] = "emocircuits " + " ".join(c[k])
    res.setdefault("wall_s", {dt: {} for dt in DTYPES})

    def save() -> None:
        runs = {dt: out / dt for dt in DTYPES}
        res.pop("analysis_error", None)
        try:
            if all((runs[dt] / layout.SUMMARY_JSON).is_file() for dt in DTYPES):
                a, b = Run(runs["float32"]), Run(runs["bfloat16"])
                res["discovery"] = discovery_agreement(a, b)
                res["n_discover_rows"] = {dt: Run(runs[dt]).summary.get("rows") for dt in DTYPES}
                if all(evaluation_folder(Run(runs[dt])) is not None for dt in DTYPES):
                    res["evaluation"] = evaluation_agreement(a, b)
                    res["judge"] = res["evaluation"]["judge"]
            res["timings"] = {dt: timings(Run(runs[dt])) for dt in DTYPES if (runs[dt] / layout.SUMMARY_JSON).is_file()}
        except Exception as err:  # a partial result is still written
            res["analysis_error"] = repr(err)
        write_text_atomic(res_path, json.dumps(res, indent=1, default=str))
        write_text_atomic(out / "bf16_agreement.md", markdown(res))

    if not args.analyse_only:
        # both discoveries first: the score agreement is ready before evaluation starts
        for step in [s for s in ("discover", "evaluate") if s in args.steps]:
            for dt in DTYPES:
                print(f"[{time.strftime('%H:%M:%S')}] {step} {dt}", flush=True)
                load0 = os.getloadavg()[0]
                r = run_command(cmds[dt][step], log)
                res["wall_s"][dt][step] = r["wall_s"]
                # the machine is shared: the 1-minute load average before and after each command
                res.setdefault("loadavg", {}).setdefault(dt, {})[step] = [round(load0, 2), round(os.getloadavg()[0], 2)]
                if r["rc"] != 0:
                    res.setdefault("failures", []).append({"dtype": dt, "step": step, **r})
                    print(f"  failed (rc {r['rc']}); see {log}", flush=True)
                else:
                    print(f"  {r['wall_s']:.0f} s", flush=True)
                save()
    save()
    print(markdown(res))
    print(f"wrote {res_path} and {out / 'bf16_agreement.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
