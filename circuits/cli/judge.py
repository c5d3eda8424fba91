"""``emocircuits judge``: calibrate judges on labelled replies, label a file, train the learned judge.

- ``judge eval FILE --judge A --judge B``: confusion matrix, recall / precision per label, emotional
  accuracy and calm recall of each judge, Cohen's kappa between every pair, and the binary match
  verdict's rates at each judge's threshold.
- ``judge eval FILE --figure DIR``: besides, each judge's expected calibration error is always printed
  (7-way verdict and match mode); ``--figure`` draws the reliability curves to ``DIR/reliability.html``.
- ``judge eval FILE --by FIELD``: besides, accuracy per value of FIELD for every judge (on an
  evaluation's ``replies.jsonl``, ``--by method`` re-reads each method's accuracy with other judges).
- ``judge label FILE``: one verdict per row (JSONL out, with every label's score).
- ``judge cv FILE``: k-fold cross-validation of learned heads (feature kinds x L2) on the rows,
  next to the lexicon judges on the same rows: how the shipped judges were chosen (``--markdown``:
  the table as a page, as for ``judge eval``).
- ``judge train FILE --out DIR``: fit a head on the rows; the match threshold is chosen on
  out-of-fold probabilities of the same rows.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from itertools import combinations
from pathlib import Path
from typing import Any

from circuits.cli import common
from circuits.core.emotions import EMOTIONS, LABELS
from circuits.judges.calibrate import (
    RELIABILITY_BINS,
    cohen_kappa,
    eval_markdown,
    format_report,
    grouped_accuracy,
    judge_labels,
    judge_outputs,
    judge_reliability,
    label_metrics,
    match_metrics,
    match_pairs,
    read_labelled,
)
from circuits.judges.learned import FEATURE_KINDS
from circuits.judges.training import cross_validate, reply_texts, train_judge


def _summary(name: str, m: dict[str, Any]) -> str:
    """One line: emotional accuracy, calm recall, the worst emotion's recall, each emotion's recall
    (``-`` where the rows hold no such label)."""

    def pct(x: float | None, width: int, digits: int = 1) -> str:
        return f"{'-':>{width}}" if x is None else f"{x:>{width}.{digits}%}"

    known = [m["recall"][e] for e in EMOTIONS if m["recall"][e] is not None]
    return (
        f"{name:<28} {pct(m['emotion_accuracy'], 8)} {pct(m['calm_recall'], 8)} "
        f"{pct(min(known) if known else None, 8)}  " + " ".join(pct(m["recall"][e], 6, 0) for e in EMOTIONS)
    )


SUMMARY_HEADER = f"{'judge':<28} {'emotion':>8} {'calm':>8} {'worst':>8}  " + " ".join(f"{e[:6]:>6}" for e in EMOTIONS)


def _eval(args: argparse.Namespace) -> int:
    from circuits.judges.base import ThresholdMatch, judge_name, judge_reads_through

    common.check_device_flag(args)
    common.check_output_files(args, "json", "markdown")
    if args.figure:
        from circuits.core.ownership import check_folder_target

        check_folder_target(args.figure, "--figure")
    rows = read_labelled(args.file, split=args.split or None, group_by=args.by)
    truth = [r.label for r in rows]
    specs = args.judge or list(DEFAULT_EVAL_JUDGES)
    verdicts: dict[str, list[str]] = {}
    report: dict[str, Any] = {
        "file": str(args.file),
        "file_name": Path(args.file).name,
        "sha256": _digest(args.file),
        "split": args.split,
        "n": len(rows),
        "judges": {},
    }
    for spec in specs:
        judge = _build(spec, args)
        name = judge_name(judge)
        v, probs = judge_outputs(judge, rows)
        verdicts[name] = v
        m = label_metrics(truth, v)
        entry: dict[str, Any] = {"labels": m, "reads_through": judge_reads_through(judge)}
        print(format_report(name, m))
        if probs is not None:
            matcher = ThresholdMatch(judge)
            scores, is_target = match_pairs(rows, probs)
            mm = match_metrics(scores, is_target, matcher.threshold)
            entry["match"] = mm
            print(
                f"  match mode (P(target) >= {mm['threshold']:.2f}) over {len(scores)} (reply, emotion) pairs: "
                f"true positive rate {mm['tpr']:.1%}, false positive rate {mm['fpr']:.1%}, "
                f"balanced accuracy {mm['balanced_accuracy']:.1%}"
            )
            rel = entry["reliability"] = judge_reliability(rows, probs)
            print(
                f"  calibration ({RELIABILITY_BINS} equal-width bins): expected calibration error "
                f"{rel['label']['ece']:.3f} (7-way verdict; largest bin gap {rel['label']['mce']:.3f}), "
                f"{rel['match']['ece']:.3f} (match mode's P(target); largest {rel['match']['mce']:.3f})"
            )
        report["judges"][name] = entry
        print()
    print(SUMMARY_HEADER)
    for name, entry in report["judges"].items():
        print(_summary(name, entry["labels"]))
    if len(verdicts) > 1:
        print("\nCohen's kappa between judges (7-way labels):")
        report["kappa"] = {}
        for a, b in combinations(verdicts, 2):
            k = cohen_kappa(verdicts[a], verdicts[b])
            report["kappa"][f"{a} vs {b}"] = k
            print(f"  {a} vs {b}: {k:.3f}")
    if args.by:
        report["by"] = {"field": args.by, "judges": {n: grouped_accuracy(rows, v) for n, v in verdicts.items()}}
        print(f"\naccuracy by {args.by} (verdict = label; on evaluation replies: the method's accuracy):")
        print(grouped_table(report["by"]["judges"]))
    figure_paths: list[str] = []
    if args.figure:
        from circuits.figures.judges import reliability_page

        curves = {n: e["reliability"] for n, e in report["judges"].items() if "reliability" in e}
        if curves:
            what = f"{Path(args.file).name}" + (f", split {args.split}" if args.split else "") + f", n = {len(rows)}"
            figure_paths = reliability_page(
                curves, args.figure, title=f"Judge reliability on {what} (marker size: items)"
            )
            print(f"wrote {', '.join(figure_paths)}")
        else:
            print("no reliability figure: none of the judges gives probabilities")
    if args.json:
        from circuits.core.artifacts import write_json_atomic

        print(f"wrote {write_json_atomic(Path(args.json), report)}")
    if args.markdown:
        from circuits.core.artifacts import write_text_atomic

        page = (args.title + "\n\n" if args.title else "") + eval_markdown(report, _command_line())
        png = [p for p in figure_paths if p.endswith(".png")]
        if png:  # the reliability figure, linked relative to the page
            rel = os.path.relpath(Path(png[0]).resolve(), Path(args.markdown).resolve().parent)
            page += f"\n![Reliability of each judge: share correct against confidence]({Path(rel).as_posix()})\n"
        print(f"wrote {write_text_atomic(Path(args.markdown), page)}")
    return 0


def _command_line() -> str:
    """The command as typed (``emocircuits`` and its arguments), for a page that says what made it."""
    import shlex

    from circuits.core.provenance import command

    return " ".join(shlex.quote(a) for a in (command() or ["emocircuits", "judge"]))


def _digest(path: str) -> str:
    """The first 16 hex digits of a file's SHA-256 (how a head and a page name the file they read)."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


DEFAULT_EVAL_JUDGES = ("learned", "learned-minilm", "style", "lexicon")


def grouped_table(by_judge: dict[str, dict[str, dict[str, Any]]]) -> str:
    """One line per (group, judge): ``n``, accuracy and accuracy per label, in %."""
    labels = [lab for lab in LABELS if any(lab in e["per_label"] for g in by_judge.values() for e in g.values())]
    groups = list(next(iter(by_judge.values()))) if by_judge else []
    gw = max([len("group")] + [len(g) for g in groups])
    jw = max([len("judge")] + [len(n) for n in by_judge])
    lines = [f"{'group':<{gw}} {'judge':<{jw}} {'n':>5} {'acc':>6}  " + " ".join(f"{lab[:7]:>7}" for lab in labels)]
    for g in groups:
        for name, per_group in by_judge.items():
            e = per_group[g]
            lines.append(
                f"{g:<{gw}} {name:<{jw}} {e['n']:>5} {100 * e['accuracy']:>6.1f}  "
                + " ".join(
                    f"{100 * e['per_label'][lab]:>7.0f}" if lab in e["per_label"] else f"{'-':>7}" for lab in labels
                )
            )
    return "\n".join(lines)


def _build(spec: str, args: argparse.Namespace):
    from circuits.judges.base import make_judge

    return make_judge(spec, device=args.device)


def _label(args: argparse.Namespace) -> int:
    from circuits.judges.base import judge_name

    common.check_device_flag(args)
    common.check_output_files(args, "out")
    rows = read_labelled(args.file, need_label=False)
    judge = _build(args.judge, args)
    texts = reply_texts(rows)
    judgements = judge(texts)
    scores = judge.probabilities(texts) if hasattr(judge, "probabilities") else [j.scores for j in judgements]
    lines = []
    for r, t, j, sc in zip(rows, texts, judgements, scores):
        lines.append(
            json.dumps(
                {
                    "text": r.text,
                    "verdict": j.label,
                    "judge": judge_name(judge),
                    "scores": {k: round(float(v), 4) for k, v in sc.items()},
                    **({"label": r.label} if r.label else {}),
                    **({"echo_removed": True} if t != r.text else {}),
                },
                ensure_ascii=False,
            )
        )
    if args.out:
        from circuits.core.artifacts import write_text_atomic

        print(f"wrote {write_text_atomic(Path(args.out), chr(10).join(lines) + chr(10))} ({len(lines)} rows)")
    else:
        sys.stdout.write("\n".join(lines) + "\n")
    return 0


def _check_head_flags(args: argparse.Namespace, n_rows: int) -> None:
    """Refuse bad ``judge cv`` / ``judge train`` options before any model loads or anything is written."""
    from circuits.judges.training import check_folds, check_l2, check_lm

    common.check_device_flag(args)
    check_l2(args.l2)
    check_folds(args.folds, n_rows)
    check_lm(args.lm, args.layer, args.features)


def _cv(args: argparse.Namespace) -> int:
    common.check_output_files(args, "markdown")
    rows = read_labelled(args.file, split=args.split or None)
    _check_head_flags(args, len(rows))
    truth = [r.label for r in rows]
    print(
        f"{len(rows)} rows of {args.file}"
        + (f" (split {args.split})" if args.split else "")
        + f"; {args.folds}-fold out-of-fold verdicts for the heads, the lexicon judges as they are"
    )
    print(SUMMARY_HEADER)
    results = {}
    for spec in ("lexicon", "style"):
        results[spec] = label_metrics(truth, judge_labels(_build(spec, args), rows))
        print(_summary(spec, results[spec]))
    for r in cross_validate(rows, args.features, args.l2, k=args.folds, seed=args.seed, lm=args.lm, layer=args.layer):
        name = f"head {r['features']} l2={r['l2']:g}"
        results[name] = r["metrics"]
        print(_summary(name, r["metrics"]))
    if args.markdown:
        from circuits.core.artifacts import write_text_atomic

        what = (
            f"`{Path(args.file).name}` (SHA-256 `{_digest(args.file)}`), "
            f"split {args.split or 'all'}, {len(rows)} replies; heads: {args.folds}-fold out-of-fold verdicts "
            f"(seed {args.seed}), the lexicon judges as they are"
        )
        page = (args.title + "\n\n" if args.title else "") + cv_markdown(results, _command_line(), what)
        print(f"wrote {write_text_atomic(Path(args.markdown), page)}")
    return 0


def cv_markdown(results: dict[str, dict[str, Any]], command: str, what: str) -> str:
    """A markdown table of ``judge cv``: per judge or head, emotional accuracy, calm recall, the worst
    emotion's recall and each emotion's recall (label metrics as :func:`label_metrics` gives them)."""
    lines = [
        f"Generated by `{command}` from {what}.",
        "",
        "| judge | emotional accuracy | calm recall | worst emotion | " + " | ".join(EMOTIONS) + " |",
        "|---|---|---|---|" + "---|" * len(EMOTIONS),
    ]
    for name, m in results.items():
        known = [m["recall"][e] for e in EMOTIONS if m["recall"][e] is not None]
        cells = [m["emotion_accuracy"], m["calm_recall"], min(known) if known else None]
        cells += [m["recall"][e] for e in EMOTIONS]
        lines.append(f"| {name} | " + " | ".join("-" if c is None else f"{c:.1%}" for c in cells) + " |")
    return "\n".join(lines) + "\n"


def _train(args: argparse.Namespace) -> int:
    from circuits.core.artifacts import InputError
    from circuits.core.ownership import check_folder_target

    check_folder_target(args.out, "--out")
    rows = read_labelled(args.file, split=args.split or None)
    _check_head_flags(args, len(rows))
    for flag, values in (("--features", args.features), ("--l2", args.l2)):
        if len(values) > 1:
            raise InputError(f"{flag}: judge train fits one head, expected one value, got {len(values)}")
    digest = _digest(args.file)
    cfg = train_judge(
        rows,
        args.out,
        kind=args.features[0],
        l2=args.l2[0],
        folds_k=args.folds,
        seed=args.seed,
        source={"file": Path(args.file).name, "sha256": digest, "split": args.split},
        lm=args.lm,
        layer=args.layer,
    )
    oof = cfg.trained_on["out_of_fold"]
    print(
        f"wrote {args.out}: {cfg.features} head, l2 {cfg.l2:g}, {len(rows)} rows; out-of-fold emotional "
        f"accuracy {oof['emotion_accuracy']:.1%}, calm recall {oof['calm_recall']:.1%}; match threshold "
        f"{cfg.match_threshold:.3f} (balanced accuracy {oof['match']['balanced_accuracy']:.1%})"
    )
    return 0


def _fluency(args: argparse.Namespace) -> int:
    from circuits.core.artifacts import InputError, write_json_atomic
    from circuits.judges.degenerate import degenerate_texts
    from circuits.judges.encoder import reference_lm
    from circuits.judges.fluency import FluencyCheck, calibration, default_fluency_check, flag_rates

    if args.degenerate < 0:
        raise InputError(f"--degenerate: expected a count >= 0, got {args.degenerate}")
    rows = read_labelled(args.file, split=args.split or None, need_label=False)
    texts = [r.text for r in rows]
    if args.calibrate:
        ref = reference_lm(args.reference)
        cal = calibration(ref, texts, {"file": Path(args.file).name, "split": args.split or "all"})
        write_json_atomic(args.calibrate, cal)
        print(f"wrote {args.calibrate}: floor {cal['floor']:.3f} nats/token under {cal['reference']}")
        check = FluencyCheck().with_reference(ref, cal["floor"])
    else:
        check = default_fluency_check()
    res = flag_rates(check, texts, degenerate_texts(args.degenerate, seed=args.seed))
    f, d = res["fluent"], res["degenerate"]
    print(
        f"fluent rows ({Path(args.file).name}, split {args.split or 'all'}): {f['flagged']} of {f['n']} flagged broken"
    )
    if d["n"]:
        kinds = ", ".join(f"{k} {v:.0%}" for k, v in d["by_kind"].items())
        print(f"generated degenerate texts (seed {args.seed}): {d['flagged_share']:.1%} of {d['n']} flagged ({kinds})")
    if args.json:
        write_json_atomic(args.json, res)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    from circuits.core.resources import data_path
    from circuits.judges.base import DEFAULT_JUDGE, JUDGE_SPECS

    p = sub.add_parser("judge", help="calibrate judges on labelled replies, label a file, train the learned judge")
    jsub = p.add_subparsers(dest="judge_command", required=True)
    default_file = str(data_path("judge_replies"))

    ev = jsub.add_parser("eval", help="confusion matrix, recall / precision, kappa between judges")
    ev.add_argument(
        "file", nargs="?", default=default_file, help=f"JSONL with text, label (default: our judge set {default_file})"
    )
    ev.add_argument(
        "--judge",
        action="append",
        default=None,
        metavar="SPEC",
        help="a judge to score (repeat for several; default: learned, learned-minilm, style and lexicon)",
    )
    ev.add_argument("--split", default=None, help="only rows with this 'split' (dev or final in our set)")
    ev.add_argument(
        "--by",
        default=None,
        metavar="FIELD",
        help="also print accuracy per value of this field (method in an evaluation's replies.jsonl, "
        "candidate in those of `prompts --replies`, source in our judge set)",
    )
    ev.add_argument("--json", default=None, help="also write the metrics here")
    ev.add_argument(
        "--figure",
        default=None,
        metavar="DIR",
        help="also draw the judges' reliability (share correct against confidence) to DIR/reliability.html",
    )
    ev.add_argument("--markdown", default=None, metavar="FILE", help="also write the summary as a markdown page")
    ev.add_argument("--title", default="", help="a first line for the --markdown page (e.g. '# Judges')")
    ev.add_argument("--device", default="cpu")
    ev.set_defaults(func=_eval)

    lab = jsub.add_parser("label", help="label every row of a JSONL file (field text; instruction optional)")
    lab.add_argument("file")
    lab.add_argument("--out", default=None, help="write JSONL here (default: stdout)")
    lab.add_argument("--device", default="cpu")
    lab.add_argument(
        "--judge", default=DEFAULT_JUDGE, metavar="SPEC", help=f"{' | '.join(JUDGE_SPECS)} (default {DEFAULT_JUDGE})"
    )
    lab.set_defaults(func=_label)

    fl = jsub.add_parser(
        "fluency",
        help="the broken-reply check on a file's rows (all fluent) and on generated degenerate text; --calibrate",
    )
    fl.add_argument("file", nargs="?", default=default_file, help="JSONL of fluent replies (field text)")
    fl.add_argument("--split", default="dev", help="rows of this split only (default dev; '' for all)")
    fl.add_argument("--degenerate", type=int, default=600, help="generated degenerate texts to check")
    fl.add_argument("--seed", type=int, default=1, help="seed of the degenerate texts (the final split uses 2)")
    fl.add_argument(
        "--calibrate",
        default=None,
        metavar="JSON",
        help="compute the reference floor on the rows and write the calibration here (the shipped one: "
        "circuits/data/fluency.json, from the dev split)",
    )
    fl.add_argument("--reference", default="smollm2-135m", help="reference model of --calibrate")
    fl.add_argument("--json", default=None, help="also write the flag rates here")
    fl.set_defaults(func=_fluency)

    for name, func, what in (
        ("cv", _cv, "cross-validate learned heads (how the shipped judge was chosen)"),
        ("train", _train, "train a learned judge folder (use it with --judge learned:DIR)"),
    ):
        q = jsub.add_parser(name, help=what)
        q.add_argument("file", nargs="?", default=default_file)
        q.add_argument("--split", default="dev", help="rows of this split only (default dev; '' for all)")
        q.add_argument(
            "--features",
            nargs="+",
            choices=FEATURE_KINDS,
            default=list(FEATURE_KINDS) if name == "cv" else ["lm+style"],
        )
        q.add_argument(
            "--l2",
            nargs="+",
            type=float,
            default=[0.03, 0.1, 0.3] if name == "cv" else [0.1],
            help="L2 penalty on the standardised features",
        )
        q.add_argument(
            "--lm",
            default="smollm2-135m",
            help="language model of the lm features (packaged name, .gguf or HF directory)",
        )
        q.add_argument("--layer", type=int, default=18, help="residual stream after this many blocks (lm features)")
        q.add_argument("--folds", type=int, default=5)
        q.add_argument("--seed", type=int, default=0)
        q.add_argument("--device", default="cpu")
        if name == "train":
            q.add_argument("--out", required=True, help="the judge folder to write")
        else:
            q.add_argument("--markdown", default=None, metavar="FILE", help="also write the table as a markdown page")
            q.add_argument("--title", default="", help="a first line for the --markdown page")
        q.set_defaults(func=func)
