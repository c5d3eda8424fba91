"""The learned judge: a multinomial logistic regression over text features (a language model's
mid-layer residual stream or a sentence encoder's embedding, and the style lexicon's scores),
trained on labelled replies.

On disk a trained judge is a folder with :data:`HEAD_CONFIG` (the :class:`HeadConfig` as JSON) and
:data:`HEAD_WEIGHTS` (safetensors: ``weight [n_labels, n_features]``, ``bias [n_labels]``,
``mean [n_features]``, ``scale [n_features]``: features are standardised before the linear layer).
Two are shipped (:data:`SHIPPED_HEADS`), each trained on the dev split of our judge set with
``emocircuits judge train``: ``circuits/data/judge_head`` (``lm+style``, read through SmolLM2) and
``circuits/data/judge_head_minilm`` (``layers+style``, read through MiniLM).

Features of a text, by :attr:`HeadConfig.features`:

- ``lm``: the mean over tokens of the residual stream of the packaged SmolLM2-135M-Instruct (or
  :attr:`HeadConfig.encoder`) after :attr:`HeadConfig.layer` blocks ``[576]``
  (:class:`~circuits.judges.encoder.LMEncoder`);
- ``embedding``: the unit-norm all-MiniLM-L6-v2 sentence embedding ``[384]``;
- ``layers``: the unit-norm token mean of each of MiniLM's 6 layers, concatenated ``[2304]``
  (:class:`~circuits.judges.encoder.SentenceEncoder` with ``layers=True``);
- ``style``: ``log1p`` of the style lexicon's score per emotion ``[6]`` and of its number of cue
  matches ``[1]``;

and the ``+`` kinds concatenate them in that order.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Sequence

import torch
from jaxtyping import Float, Int

from circuits.core.artifacts import InputError, staged_dir
from circuits.core.config import config_from_dict
from circuits.core.emotions import EMOTIONS, LABELS, NEUTRAL
from circuits.core.readers import as_path, load_tensors, read_json
from circuits.judges.lexicon import Judgement, LexiconJudge

HEAD_CONFIG = "cfg.json"
HEAD_WEIGHTS = "head.safetensors"
FEATURE_KINDS = ("lm+style", "lm", "layers+style", "layers", "embedding+style", "embedding", "style")


@dataclass
class HeadConfig:
    """What a trained head needs to be rebuilt and what it was trained on."""

    labels: tuple[str, ...] = LABELS
    features: str = "lm+style"
    encoder: str = "smollm2-135m"
    layer: int | None = 18
    l2: float = 0.1
    match_threshold: float = 0.5
    trained_on: dict[str, Any] = field(default_factory=dict)
    version: int = 1

    def __post_init__(self) -> None:
        self.labels = tuple(self.labels)
        if self.features not in FEATURE_KINDS:
            raise ValueError(f"features must be one of {FEATURE_KINDS}, got {self.features!r}")
        if sorted(self.labels) != sorted(LABELS):
            raise InputError(f"HeadConfig.labels: expected {LABELS} in some order, got {self.labels}")
        for name, low, high in (("match_threshold", 0.0, 1.0), ("l2", 0.0, math.inf)):
            x = getattr(self, name)
            if isinstance(x, bool) or not isinstance(x, (int, float)) or not low <= x <= high or math.isnan(x):
                raise InputError(f"HeadConfig.{name}: expected a finite number in [{low:g}, {high:g}], got {x!r}")
        if self.layer is not None and (
            isinstance(self.layer, bool) or not isinstance(self.layer, int) or self.layer < 0
        ):
            raise InputError(f"HeadConfig.layer: expected a whole number >= 0 or null, got {self.layer!r}")
        if not isinstance(self.encoder, str) or (not self.encoder and self.features != "style"):
            raise InputError(f"HeadConfig.encoder: expected a model name, got {self.encoder!r}")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["labels"] = list(self.labels)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "HeadConfig":
        return config_from_dict(cls, d)


@lru_cache(maxsize=1)
def style_judge() -> LexiconJudge:
    """The style lexicon judge (``circuits/data/style_lexicon.json``), built once."""
    from circuits.core.resources import data_path

    return LexiconJudge.from_file(data_path("style_lexicon"), name="style")


def style_features(texts: Sequence[str]) -> Float[torch.Tensor, "n 7"]:
    """``log1p`` of the style lexicon's score per emotion (EMOTIONS order) and of its match count."""
    rows = []
    for j in style_judge()(texts):
        rows.append([math.log1p(j.scores[e]) for e in EMOTIONS] + [math.log1p(len(j.matches))])
    return torch.tensor(rows, dtype=torch.float32).reshape(len(rows), len(EMOTIONS) + 1)


def make_encoder(kind: str, model: str = "smollm2-135m", layer: int | None = 18, device: str = "cpu") -> Any:
    """The text encoder a head of ``kind`` needs (None for ``style``), loaded once per process."""
    from circuits.judges.encoder import lm_encoder, packaged_encoder

    if kind.startswith("lm"):
        return lm_encoder(model, int(layer if layer is not None else 18), device)
    if kind.startswith(("embedding", "layers")):
        return packaged_encoder(device, layers=kind.startswith("layers"))
    return None


def features(texts: Sequence[str], kind: str = "lm+style", encoder: Any = None) -> Float[torch.Tensor, "n f"]:
    """The feature matrix of ``texts`` for a head of ``kind`` (see the module docstring); ``encoder``
    defaults to :func:`make_encoder`'s."""
    if kind not in FEATURE_KINDS:
        raise ValueError(f"kind must be one of {FEATURE_KINDS}, got {kind!r}")
    parts = []
    if kind != "style":
        parts.append((encoder or make_encoder(kind))(list(texts)))
    if kind.endswith("style"):
        parts.append(style_features(texts))
    return torch.cat(parts, dim=1)


def fit_logistic(
    x: Float[torch.Tensor, "n f"],
    y: Int[torch.Tensor, " n"],
    n_classes: int,
    l2: float = 1e-2,
    balanced: bool = True,
    steps: int = 200,
) -> dict[str, torch.Tensor]:
    """Multinomial logistic regression by L-BFGS on standardised features; deterministic.

    Minimises mean (class-balanced when ``balanced``) cross-entropy + ``l2 * ||W||^2 / 2``. Returns
    ``{"weight" [c, f], "bias" [c], "mean" [f], "scale" [f]}``.
    """
    x = x.double()
    mean = x.mean(0)
    scale = x.std(0).clamp(min=1e-6)
    z = (x - mean) / scale
    counts = torch.bincount(y, minlength=n_classes).double()
    w_class = (
        (counts.sum() / (n_classes * counts.clamp(min=1))) if balanced else torch.ones(n_classes, dtype=torch.float64)
    )
    weight = torch.zeros(n_classes, x.shape[1], dtype=torch.float64, requires_grad=True)
    bias = torch.zeros(n_classes, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS(
        [weight, bias],
        lr=1.0,
        max_iter=steps,
        tolerance_grad=1e-9,
        tolerance_change=1e-12,
        history_size=20,
        line_search_fn="strong_wolfe",
    )
    sample_w = w_class[y]

    def closure():
        opt.zero_grad()
        loss = (
            torch.nn.functional.cross_entropy(z @ weight.T + bias, y, reduction="none") * sample_w
        ).sum() / sample_w.sum()
        loss = loss + 0.5 * l2 * (weight**2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return {
        "weight": weight.detach().float(),
        "bias": bias.detach().float(),
        "mean": mean.float(),
        "scale": scale.float(),
    }


def predict_proba(head: dict[str, torch.Tensor], x: Float[torch.Tensor, "n f"]) -> Float[torch.Tensor, "n c"]:
    """Softmax probabilities of a fitted head on feature rows."""
    z = (x.float() - head["mean"]) / head["scale"]
    return torch.softmax(z @ head["weight"].T + head["bias"], dim=-1)


class LearnedJudge:
    """Label judge from a trained head folder (default: the shipped one). Verdicts carry the
    probability of every label as ``scores``; :meth:`probabilities` gives them per text (the match
    mode, :class:`~circuits.judges.base.ThresholdMatch`, compares P(target) with ``match_threshold``)."""

    def __init__(
        self, folder: str | Path | None = None, encoder: Any = None, device: str = "cpu", name: str | None = None
    ):
        from circuits.core.resources import data_dir

        self.folder = as_path(folder, "LearnedJudge: folder") if folder is not None else data_dir("judge_head")
        cfg_path, w_path = self.folder / HEAD_CONFIG, self.folder / HEAD_WEIGHTS
        if not cfg_path.is_file() or not w_path.is_file():
            raise InputError(
                f"{self.folder}: a learned judge folder needs {HEAD_CONFIG} and {HEAD_WEIGHTS} "
                "(write one with `emocircuits judge train`)"
            )
        raw = read_json(cfg_path, what="judge head config")
        try:
            self.config = HeadConfig.from_dict(raw)
        except (ValueError, TypeError) as err:
            raise InputError(f"{cfg_path}: {err}") from None
        self.head = read_head(w_path, len(self.config.labels), STYLE_DIM if self.config.features == "style" else None)
        if self.config.features != "style" and encoder is None:
            encoder = make_encoder(self.config.features, self.config.encoder, self.config.layer, device)
        self.encoder = encoder
        self.name = name or ("learned" if folder is None else f"learned:{self.folder}")
        self.match_threshold = self.config.match_threshold

    def probabilities(self, texts: Sequence[str]) -> list[dict[str, float]]:
        if isinstance(texts, str):
            raise TypeError("expected a sequence of texts, got a single str: wrap it in a list")
        if not texts:
            return []
        x = features(texts, self.config.features, self.encoder)
        if x.shape[1] != self.head["mean"].shape[0]:
            raise InputError(
                f"{self.folder / HEAD_WEIGHTS}: the head takes {self.head['mean'].shape[0]} features, its encoder "
                f"gives {x.shape[1]} (the head was trained with another encoder or layer)"
            )
        probs = predict_proba(self.head, x)
        return [dict(zip(self.config.labels, row.tolist())) for row in probs]

    @staticmethod
    def labels_from(probs: Sequence[dict[str, float]]) -> list[str]:
        """The verdict of each probability dict: the most probable label (ties: the first in LABELS)."""
        return [max(LABELS, key=lambda k: p[k]) for p in probs]

    def __call__(self, texts: Sequence[str]) -> list[Judgement]:
        probs = self.probabilities(texts)
        return [
            Judgement(label=label, scores={e: p[e] for e in EMOTIONS} | {NEUTRAL: p[NEUTRAL]}, matches=())
            for label, p in zip(self.labels_from(probs), probs)
        ]

    def label(self, texts: Sequence[str]) -> list[str]:
        return [j.label for j in self(texts)]


STYLE_DIM = len(EMOTIONS) + 1
"""Number of style features (:func:`style_features`)."""


def read_head(path: Path, n_labels: int, n_features: int | None = None) -> dict[str, torch.Tensor]:
    """A head's weights (``weight [c, f]``, ``bias [c]``, ``mean [f]``, ``scale [f]``, float32, finite,
    ``scale > 0``); a missing, truncated or mis-shaped file raises :class:`InputError` naming it."""
    f32 = (torch.float32,)
    head = load_tensors(
        path,
        what="judge head",
        expect={
            "weight": ((n_labels, n_features), f32),
            "bias": ((n_labels,), f32),
            "mean": ((n_features,), f32),
            "scale": ((n_features,), f32),
        },
    )
    f = head["weight"].shape[1]
    if head["mean"].shape[0] != f or head["scale"].shape[0] != f:
        raise InputError(
            f"{path}: 'weight' has {f} features, 'mean' {head['mean'].shape[0]} and 'scale' {head['scale'].shape[0]}"
        )
    if not bool((head["scale"] > 0).all()):
        raise InputError(f"{path}: tensor 'scale': every value must be > 0")
    return head


SHIPPED_HEADS: dict[str, str] = {"learned": "judge_head", "learned-minilm": "judge_head_minilm"}
"""Judge spec -> shipped head folder (a key of :data:`circuits.core.resources.DATA_DIRS`): ``learned``
reads text through SmolLM2-135M-Instruct (``lm+style``); ``learned-minilm`` through the all-MiniLM-L6-v2
sentence encoder (``layers+style``), a model no one steers here."""


@lru_cache(maxsize=4)
def shipped_judge(device: str = "cpu", spec: str = "learned") -> LearnedJudge:
    """A shipped learned judge (``spec``: a key of :data:`SHIPPED_HEADS`), built once per device."""
    from circuits.core.resources import data_dir

    if spec not in SHIPPED_HEADS:
        raise KeyError(f"no shipped learned judge {spec!r}; known: {', '.join(SHIPPED_HEADS)}")
    return LearnedJudge(data_dir(SHIPPED_HEADS[spec]), device=device, name=spec)


def save_head(folder: str | Path, head: dict[str, torch.Tensor], config: HeadConfig) -> Path:
    """Write a head folder atomically (a complete folder replaces any old one)."""
    import os

    from safetensors.torch import save_file

    from circuits.core.artifacts import _umask

    mask = _umask()
    with staged_dir(folder) as tmp:
        save_file({k: v.contiguous() for k, v in head.items()}, str(tmp / HEAD_WEIGHTS))
        (tmp / HEAD_CONFIG).write_text(json.dumps(config.to_dict(), indent=1) + "\n", encoding="utf-8")
        for name in (HEAD_WEIGHTS, HEAD_CONFIG):  # readable like any file the user writes (it may ship)
            os.chmod(tmp / name, 0o666 & ~mask)
        os.chmod(tmp, 0o777 & ~mask)
    return Path(folder)
