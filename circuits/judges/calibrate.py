"""Judge calibration: labelled reply files, confusion matrices, recall / precision, Cohen's kappa,
and the threshold of the binary "does this reply match emotion X" verdict.

A labelled file is JSON Lines, one object per line: ``text`` (the reply) and ``label`` (one of
LABELS; ``calm`` is read as ``neutral``), optionally ``instruction`` (a string or a list: the
emotion instruction the model saw, whose echo is removed before judging) and ``split``. The shipped
judge set (``circuits/data/judge_replies.jsonl``) is such a file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from circuits.core.artifacts import InputError
from circuits.core.emotions import EMOTIONS, LABELS, NEUTRAL
from circuits.core.readers import iter_jsonl

ALIASES = {"calm": NEUTRAL}


def split_of(text: str) -> str:
    """``dev`` or ``final`` for a judge-set text: a fixed function of the text's SHA-256, so the
    split is reproducible and a row never changes sides when others are added
    (:func:`circuits.core.elicitation.hash_split`, 35% final)."""
    from circuits.core.elicitation import hash_split

    return hash_split(text)


class LabelledFileError(InputError):
    """A labelled reply file that cannot be read: names the file, the line and what was expected."""


@dataclass(frozen=True)
class LabelledReply:
    text: str
    label: str
    instructions: tuple[str, ...] = ()
    split: str | None = None
    source: str | None = None
    group: str | None = None


def read_labelled(
    path: str | Path, split: str | None = None, need_label: bool = True, group_by: str | None = None
) -> list[LabelledReply]:
    """Rows of a labelled JSONL file (only those of ``split`` when given). ``group_by``: a field every
    row must have (say ``method`` in an evaluation's ``replies.jsonl``); its value is the row's ``group``."""
    path = Path(path)
    if not path.is_file():
        raise LabelledFileError(f"{path}: no such file (expected JSON Lines with fields text, label)")
    out = []
    for n, row in iter_jsonl(
        path, what="labelled reply file", top=None, allow_nan=True, error=LabelledFileError, where="{path}, line {line}"
    ):
        if not isinstance(row, dict) or not isinstance(row.get("text"), str):
            raise LabelledFileError(f"{path}, line {n}: expected an object with a string field 'text'")
        label = row.get("label")
        if need_label or label is not None:
            label = ALIASES.get(label, label)
            if label not in LABELS:
                raise LabelledFileError(
                    f"{path}, line {n}: field 'label' must be one of {', '.join(LABELS)} "
                    f"(or calm), got {row.get('label')!r}"
                )
        ins = row.get("instruction", row.get("instructions", ()))
        ins = (ins,) if isinstance(ins, str) else ins
        if not isinstance(ins, (list, tuple)) or not all(isinstance(i, str) for i in ins):
            raise LabelledFileError(f"{path}, line {n}: field 'instruction' must be a string or a list of strings")
        if group_by is not None and group_by not in row:
            raise LabelledFileError(f"{path}, line {n}: no field {group_by!r} to group by (--by)")
        if split is not None and row.get("split") != split:
            continue
        out.append(
            LabelledReply(
                row["text"],
                label,
                tuple(ins),
                row.get("split"),
                row.get("source"),
                None if group_by is None else str(row[group_by]),
            )
        )
    if not out:
        raise LabelledFileError(f"{path}: no rows" + (f" with split {split!r}" if split else ""))
    return out


def judge_labels(judge: Any, rows: Sequence[LabelledReply]) -> list[str]:
    """A label judge's verdict on each row, echoes of the row's instructions removed first."""
    from circuits.judges.echo import strip_echoes

    texts = strip_echoes([r.text for r in rows], [r.instructions for r in rows])
    return [j.label for j in judge(texts)]


def judge_outputs(judge: Any, rows: Sequence[LabelledReply]) -> tuple[list[str], list[dict[str, float]] | None]:
    """A judge's verdicts on the rows (as :func:`judge_labels`) and its probabilities (None for a judge
    that gives none), in one pass of the judge where its verdicts follow from its probabilities (a
    judge with ``labels_from``, e.g. the learned heads)."""
    from circuits.judges.echo import strip_echoes

    texts = strip_echoes([r.text for r in rows], [r.instructions for r in rows])
    if hasattr(judge, "labels_from"):
        probs = judge.probabilities(texts)
        return judge.labels_from(probs), probs
    labels = [j.label for j in judge(texts)]
    return labels, (judge.probabilities(texts) if hasattr(judge, "probabilities") else None)


def confusion(truth: Sequence[str], pred: Sequence[str], labels: Sequence[str] = LABELS) -> list[list[int]]:
    """``m[i][j]``: rows whose truth is ``labels[i]`` judged ``labels[j]``."""
    idx = {lab: i for i, lab in enumerate(labels)}
    m = [[0] * len(labels) for _ in labels]
    for t, p in zip(truth, pred, strict=True):
        m[idx[t]][idx[p]] += 1
    return m


def cohen_kappa(a: Sequence[str], b: Sequence[str]) -> float:
    """Cohen's kappa of two labelings of the same items (1 agree fully, 0 chance level)."""
    if len(a) != len(b) or not a:
        raise ValueError(f"kappa needs two labelings of the same non-empty items, got {len(a)} and {len(b)}")
    n = len(a)
    po = sum(x == y for x, y in zip(a, b)) / n
    labels = set(a) | set(b)
    pe = sum((list(a).count(k) / n) * (list(b).count(k) / n) for k in labels)
    return 1.0 if pe == 1 else (po - pe) / (1 - pe)


def label_metrics(truth: Sequence[str], pred: Sequence[str]) -> dict[str, Any]:
    """Accuracy over all rows, ``emotion_accuracy`` (emotional rows judged as their emotion; a
    neutral verdict is a miss), ``calm_recall``, per-label recall / precision and the confusion matrix."""
    m = confusion(truth, pred)
    recall, precision = {}, {}
    for i, lab in enumerate(LABELS):
        row, col = sum(m[i]), sum(r[i] for r in m)
        recall[lab] = m[i][i] / row if row else None
        precision[lab] = m[i][i] / col if col else None
    emo = [(t, p) for t, p in zip(truth, pred) if t in EMOTIONS]
    return {
        "n": len(truth),
        "accuracy": sum(t == p for t, p in zip(truth, pred)) / len(truth),
        "emotion_accuracy": sum(t == p for t, p in emo) / len(emo) if emo else None,
        "calm_recall": recall[NEUTRAL],
        "recall": recall,
        "precision": precision,
        "labels": list(LABELS),
        "confusion": m,
    }


def match_pairs(rows: Sequence[LabelledReply], probs: Sequence[dict[str, float]]) -> tuple[list[float], list[bool]]:
    """Every (row, emotion) pair: the judge's P(emotion) and whether the row's label is that emotion."""
    scores, truth = [], []
    for r, p in zip(rows, probs, strict=True):
        for e in EMOTIONS:
            scores.append(p[e])
            truth.append(r.label == e)
    return scores, truth


def match_metrics(scores: Sequence[float], truth: Sequence[bool], threshold: float) -> dict[str, float]:
    """True / false positive rates and balanced accuracy of ``score >= threshold``."""
    pos = [s >= threshold for s, t in zip(scores, truth) if t]
    neg = [s >= threshold for s, t in zip(scores, truth) if not t]
    tpr = sum(pos) / len(pos) if pos else float("nan")
    fpr = sum(neg) / len(neg) if neg else float("nan")
    return {"threshold": threshold, "tpr": tpr, "fpr": fpr, "balanced_accuracy": (tpr + 1 - fpr) / 2}


def choose_threshold(scores: Sequence[float], truth: Sequence[bool]) -> float:
    """The threshold with the best balanced accuracy (ties: the higher threshold); candidates are the
    midpoints between consecutive distinct scores."""
    values = sorted(set(scores))
    cands = [(a + b) / 2 for a, b in zip(values, values[1:])] or values
    best = max(cands, key=lambda t: (round(match_metrics(scores, truth, t)["balanced_accuracy"], 12), t))
    return float(best)


RELIABILITY_BINS = 10
"""Equal-width confidence bins of :func:`reliability` (the usual choice for expected calibration error)."""


def reliability(confidence: Sequence[float], correct: Sequence[bool], bins: int = RELIABILITY_BINS) -> dict[str, Any]:
    """How far a judge's probabilities are from the hit rates they promise.

    The ``[0, 1]`` confidence range is cut into ``bins`` equal-width bins (the last one closed); per bin:
    ``lo``, ``hi``, ``n``, ``confidence`` (mean) and ``accuracy`` (share correct; both None for an empty
    bin). ``ece``: expected calibration error, ``sum_b n_b / n * |accuracy_b - confidence_b|`` (0 for a
    calibrated judge, in probability units); ``mce``: the largest per-bin gap; ``n``: the items."""
    if len(confidence) != len(correct) or not confidence:
        raise ValueError(
            f"reliability needs as many correctness flags as confidences (non-empty), got "
            f"{len(confidence)} and {len(correct)}"
        )
    if bins < 1:
        raise ValueError(f"reliability: bins must be >= 1, got {bins}")
    sums = [[0, 0.0, 0] for _ in range(bins)]  # n, sum of confidence, correct
    for c, ok in zip(confidence, correct):
        c = float(c)
        if not 0.0 <= c <= 1.0:
            raise ValueError(f"reliability: confidences must lie in [0, 1], got {c}")
        b = min(int(c * bins), bins - 1)
        sums[b][0] += 1
        sums[b][1] += c
        sums[b][2] += bool(ok)
    n = len(confidence)
    out, ece, mce = [], 0.0, 0.0
    for i, (k, csum, hits) in enumerate(sums):
        conf = csum / k if k else None
        acc = hits / k if k else None
        if k:
            gap = abs(acc - conf)
            ece += k / n * gap
            mce = max(mce, gap)
        out.append({"lo": i / bins, "hi": (i + 1) / bins, "n": k, "confidence": conf, "accuracy": acc})
    return {"n": n, "ece": ece, "mce": mce, "bins": out}


def judge_reliability(rows: Sequence[LabelledReply], probs: Sequence[dict[str, float]]) -> dict[str, Any]:
    """Both reliabilities of a judge's probabilities on labelled rows: ``label`` (the top label's
    probability against whether the top label is the row's label: the 7-way verdict) and ``match``
    (every (row, emotion) pair's P(emotion) against whether the row is that emotion: what the match
    mode thresholds, :func:`match_pairs`)."""
    top = [max(LABELS, key=lambda k: p[k]) for p in probs]
    scores, truth = match_pairs(rows, probs)
    return {
        "label": reliability(
            [p[t] for p, t in zip(probs, top)], [t == r.label for t, r in zip(top, rows, strict=True)]
        ),
        "match": reliability(scores, truth),
    }


def grouped_accuracy(rows: Sequence[LabelledReply], verdicts: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Per group (in order of first appearance): ``n``, ``accuracy`` (verdict equals label) and
    ``per_label`` accuracy. On an evaluation's replies (label = target emotion) that is each method's
    accuracy as this judge reads it."""
    out: dict[str, dict[str, Any]] = {}
    for r, v in zip(rows, verdicts, strict=True):
        g = out.setdefault(str(r.group), {"hits": [], "per": {}})
        g["hits"].append(v == r.label)
        g["per"].setdefault(r.label, []).append(v == r.label)
    return {
        k: {
            "n": len(g["hits"]),
            "accuracy": sum(g["hits"]) / len(g["hits"]),
            "per_label": {lab: sum(h) / len(h) for lab, h in g["per"].items()},
        }
        for k, g in out.items()
    }


def eval_markdown(report: dict[str, Any], command: str) -> str:
    """A markdown page of a ``judge eval`` report (the dict it writes with ``--json``): per judge, the
    model it reads through, emotional accuracy and calm recall with 95% Wilson intervals, recall per
    emotion, the match mode's balanced accuracy and both expected calibration errors; then accuracy per
    group when the report has one. ``command``: the command line that made it, quoted on the page."""
    from circuits.core.stats import wilson_interval

    def ci(hits: int, n: int) -> str:
        if not n:
            return "-"
        low, high = wilson_interval(hits, n)
        return f"{hits / n:.1%} [{low:.1%}, {high:.1%}]"

    def num(x: Any, fmt: str) -> str:
        return "-" if x is None else format(x, fmt)

    first = next(iter(report["judges"].values()))["labels"] if report["judges"] else None
    per_label = {lab: sum(first["confusion"][i]) for i, lab in enumerate(LABELS)} if first else {}
    n_emo = sum(per_label.get(e, 0) for e in EMOTIONS)
    lines = [
        f"Generated by `{command}` from `{report['file_name']}` (SHA-256 `{report['sha256']}`), "
        f"split {report['split'] or 'all'}: {report['n']} replies, {n_emo} emotional and "
        f"{per_label.get(NEUTRAL, 0)} calm. Intervals are 95% Wilson intervals; ECE is the expected "
        f"calibration error over {RELIABILITY_BINS} equal-width bins (0 is calibrated).",
        "",
        "| judge | reads through | emotional accuracy | calm recall | "
        + " | ".join(f"{e} (n={per_label.get(e, 0)})" for e in EMOTIONS)
        + " | match balanced accuracy | ECE verdict | ECE match |",
        "|---|---|---|---|" + "---|" * len(EMOTIONS) + "---|---|---|",
    ]
    for name, e in report["judges"].items():
        m = e["labels"]
        conf = m["confusion"]
        emo_hits = sum(conf[LABELS.index(x)][LABELS.index(x)] for x in EMOTIONS)
        calm_i = LABELS.index(NEUTRAL)
        rel = e.get("reliability") or {}
        lines.append(
            f"| {name} | {e.get('reads_through') or '-'} | {ci(emo_hits, n_emo)} | "
            f"{ci(conf[calm_i][calm_i], sum(conf[calm_i]))} | "
            + " | ".join(num(m["recall"][x], ".0%") for x in EMOTIONS)
            + f" | {num((e.get('match') or {}).get('balanced_accuracy'), '.1%')} | "
            f"{num((rel.get('label') or {}).get('ece'), '.3f')} | {num((rel.get('match') or {}).get('ece'), '.3f')} |"
        )
    by = report.get("by")
    if by:
        labels = [
            lab for lab in LABELS if any(lab in g["per_label"] for j in by["judges"].values() for g in j.values())
        ]
        lines += [
            "",
            f"Accuracy (verdict = label) by `{by['field']}`:",
            "",
            f"| {by['field']} | judge | n | accuracy | " + " | ".join(labels) + " |",
            "|---|---|---|---|" + "---|" * len(labels),
        ]
        groups = list(next(iter(by["judges"].values())))
        for g in groups:
            for name, per_group in by["judges"].items():
                x = per_group[g]
                hits = round(x["accuracy"] * x["n"])
                lines.append(
                    f"| {g} | {name} | {x['n']} | {ci(hits, x['n'])} | "
                    + " | ".join(num(x["per_label"].get(lab), ".0%") for lab in labels)
                    + " |"
                )
    return "\n".join(lines) + "\n"


def format_report(name: str, metrics: dict[str, Any]) -> str:
    """The confusion matrix (rows: truth, columns: verdict) and recall / precision per label."""
    short = [lab[:7] for lab in metrics["labels"]]
    lines = [
        f"judge {name}: accuracy {metrics['accuracy']:.1%} over {metrics['n']} rows; emotional rows "
        f"{_pct(metrics['emotion_accuracy'])}, calm recall {_pct(metrics['calm_recall'])}",
        "truth \\ verdict " + " ".join(f"{s:>7}" for s in short) + "   recall  precision",
    ]
    for lab, row in zip(metrics["labels"], metrics["confusion"]):
        lines.append(
            f"{lab:<16}"
            + " ".join(f"{v:>7}" for v in row)
            + f"   {_pct(metrics['recall'][lab]):>6}  {_pct(metrics['precision'][lab]):>9}"
        )
    return "\n".join(lines)


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x:.1%}"
