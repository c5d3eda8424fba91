"""Training the learned judge on labelled replies: stratified folds, out-of-fold probabilities,
cross-validation of heads (features x L2) and fitting the shipped head with its match threshold
(``emocircuits judge cv`` and ``judge train``, :mod:`circuits.cli.judge`)."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any, Sequence

from circuits.core.config import check_number
from circuits.core.emotions import LABELS
from circuits.judges.calibrate import LabelledReply, choose_threshold, label_metrics, match_metrics, match_pairs
from circuits.judges.learned import HeadConfig, features, fit_logistic, predict_proba, save_head


def folds(rows: Sequence[LabelledReply], k: int, seed: int) -> list[int]:
    """Fold index per row, stratified by label, reproducible from ``seed`` (``k`` below 1 is refused)."""
    check_number(k, "folds (--folds)", int, min=1)
    rng = random.Random(seed)
    out = [0] * len(rows)
    for lab in LABELS:
        idx = [i for i, r in enumerate(rows) if r.label == lab]
        rng.shuffle(idx)
        for j, i in enumerate(idx):
            out[i] = j % k
    return out


def check_l2(l2s: Sequence[float]) -> None:
    """Refuse an L2 penalty that is not a finite number >= 0 in float32 (``nan`` would train a head
    whose match threshold is NaN: a judge that calls every text one emotion)."""
    for l2 in l2s:
        check_number(l2, "l2 (--l2)", float, min=0)


def check_folds(k: int, n_rows: int) -> None:
    """Refuse a fold count below 2 or above the number of rows (a fold would be empty)."""
    check_number(k, "folds (--folds)", int, min=2, max=n_rows, bound=f"the file has {n_rows} rows")


def check_lm(lm: str, layer: int, kinds: Sequence[str]) -> None:
    """For the kinds that read a language model (``lm...``): refuse an ``lm`` that names no model (a
    packaged name, an existing ``.gguf`` file or a Hugging Face folder) and a ``layer`` outside its
    blocks, before the model loads (its ``config.json`` gives the count)."""
    import json

    from circuits.core.artifacts import InputError
    from circuits.core.gguf import PACKAGED_MODELS, resolve_gguf

    if not any(k.startswith("lm") for k in kinds):
        return
    check_number(layer, "layer (--layer)", int, min=1)
    if lm not in PACKAGED_MODELS and not (lm.lower().endswith(".gguf") and Path(lm).expanduser().is_file()):
        if not Path(lm).expanduser().is_dir():
            raise InputError(
                f"--lm {lm}: no such model (expected a packaged name such as smollm2-135m, a .gguf file or a "
                "Hugging Face model folder)"
            )
    folder = resolve_gguf(lm) or Path(lm).expanduser()
    try:
        n_blocks = json.loads((Path(folder) / "config.json").read_text(encoding="utf-8"))["num_hidden_layers"]
    except (OSError, ValueError, KeyError, TypeError):
        raise InputError(
            f"--lm {lm}: {folder}/config.json gives no num_hidden_layers; expected a model folder"
        ) from None
    check_number(layer, "layer (--layer)", int, max=int(n_blocks), bound=f"{lm} has {n_blocks} blocks")


def reply_texts(rows: Sequence[LabelledReply]) -> list[str]:
    """The rows' texts with echoes of their instructions removed (what every judge reads)."""
    from circuits.judges.echo import strip_echoes

    return strip_echoes([r.text for r in rows], [r.instructions for r in rows])


def _features(rows: Sequence[LabelledReply], kind: str, lm: str, layer: int) -> Any:
    from circuits.judges.learned import make_encoder

    return features(reply_texts(rows), kind, make_encoder(kind, lm, layer) if kind != "style" else None)


def out_of_fold(
    rows: Sequence[LabelledReply],
    kind: str,
    l2: float,
    k: int = 5,
    seed: int = 0,
    x: Any = None,
    lm: str = "smollm2-135m",
    layer: int = 18,
) -> list[dict[str, float]]:
    """Each row's probabilities from a head trained on the other folds (``x``: precomputed features)."""
    import torch

    x = _features(rows, kind, lm, layer) if x is None else x
    y = torch.tensor([LABELS.index(r.label) for r in rows])
    fold = torch.tensor(folds(rows, k, seed))
    probs = torch.zeros(len(rows), len(LABELS))
    for f in range(k):
        train, test = fold != f, fold == f
        head = fit_logistic(x[train], y[train], len(LABELS), l2=l2)
        probs[test] = predict_proba(head, x[test])
    return [dict(zip(LABELS, p.tolist())) for p in probs]


def verdicts(probs: Sequence[dict[str, float]]) -> list[str]:
    """The most probable label of each row."""
    return [max(LABELS, key=lambda k: p[k]) for p in probs]


def cross_validate(
    rows: Sequence[LabelledReply],
    kinds: Sequence[str],
    l2s: Sequence[float],
    k: int = 5,
    seed: int = 0,
    progress: bool = True,
    lm: str = "smollm2-135m",
    layer: int = 18,
) -> list[dict[str, Any]]:
    """Out-of-fold label metrics of every (features, l2) head on ``rows``. Bad options (``l2`` not a
    finite number >= 0, ``k`` below 2 or above the rows, an ``lm`` or ``layer`` that does not exist) are
    refused with :class:`~circuits.core.artifacts.InputError` before any model loads."""
    from tqdm.auto import tqdm

    check_l2(l2s)
    check_folds(k, len(rows))
    check_lm(lm, layer, kinds)

    truth = [r.label for r in rows]
    cache: dict[str, Any] = {}
    out = []
    for kind, l2 in tqdm([(a, b) for a in kinds for b in l2s], desc="cv", disable=not progress):
        if kind not in cache:
            cache[kind] = _features(rows, kind, lm, layer)
        probs = out_of_fold(rows, kind, l2, k=k, seed=seed, x=cache[kind])
        out.append({"features": kind, "l2": l2, "metrics": label_metrics(truth, verdicts(probs)), "probs": probs})
    return out


def train_judge(
    rows: Sequence[LabelledReply],
    out: str | Path,
    kind: str = "lm+style",
    l2: float = 0.1,
    folds_k: int = 5,
    seed: int = 0,
    source: dict[str, Any] | None = None,
    lm: str = "smollm2-135m",
    layer: int = 18,
) -> HeadConfig:
    """Fit the head on all ``rows``, pick the match threshold on their out-of-fold probabilities,
    write the judge folder atomically; returns its config. Bad options are refused as in
    :func:`cross_validate`, before any model loads or anything is written."""
    import torch

    from circuits.judges.encoder import ENCODER_NAME

    check_l2([l2])
    check_folds(folds_k, len(rows))
    check_lm(lm, layer, [kind])

    x = _features(rows, kind, lm, layer)
    y = torch.tensor([LABELS.index(r.label) for r in rows])
    probs = out_of_fold(rows, kind, l2, k=folds_k, seed=seed, x=x)
    scores, truth = match_pairs(rows, probs)
    threshold = choose_threshold(scores, truth)
    oof = label_metrics([r.label for r in rows], verdicts(probs))
    head = fit_logistic(x, y, len(LABELS), l2=l2)
    cfg = HeadConfig(
        features=kind,
        l2=l2,
        match_threshold=threshold,
        encoder=lm if kind.startswith("lm") else ENCODER_NAME if kind.startswith(("embedding", "layers")) else "",
        layer=layer if kind.startswith("lm") else None,
        trained_on={
            **(source or {}),
            "n": len(rows),
            "folds": folds_k,
            "seed": seed,
            "per_label": {lab: sum(r.label == lab for r in rows) for lab in LABELS},
            "out_of_fold": {
                "emotion_accuracy": oof["emotion_accuracy"],
                "calm_recall": oof["calm_recall"],
                "match": match_metrics(scores, truth, threshold),
            },
        },
    )
    save_head(out, head, cfg)
    return cfg
