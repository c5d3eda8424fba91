"""Control vectors in GGUF, the file llama.cpp steers with (``--control-vector``, ``llama_set_adapter_cvec``).

The layout (what repeng writes and llama.cpp's ``common`` loader reads): a GGUF file of architecture
``controlvector`` with the keys ``controlvector.model_hint`` (the llama.cpp architecture name, e.g.
``llama``) and ``controlvector.layer_count``, and one float32 tensor ``direction.{L}`` of size
``d_model`` per steered layer. llama.cpp adds ``direction.{L}`` to the output of decoder block ``L``
(0-based, the same index as our ``resid_post`` layer ``L``) at every position, prompt and generated;
block 0 cannot be steered (its loader refuses ``direction.0``; the buffer starts at layer 1). Pinned by
``tests/interop/test_controlvector.py`` against llama.cpp itself when llama-cpp-python is installed.

Strength convention: a file holds the vector *as added* (the strength is already multiplied in);
``ControlVector.meta["strength"]`` records it, and llama.cpp's ``--control-vector-scaled FILE s``
scales it again by ``s``. Sources (each writes what the workbench method adds, as one constant vector
per block output):

* :func:`from_directions`: direction steering, ``alpha * sigma_L * v_L`` with ``sigma_L`` the mean
  residual RMS of that layer over the store's neutral rows (the workbench adds ``alpha * RMS(h) * v``
  per token; the file uses the layer's mean RMS);
* :func:`from_emotion_vectors`: ``alpha * EV_L`` (the workbench adds it to the attention output of
  layer ``L``; the file adds it to block ``L``'s output, so layer ``L``'s own MLP does not see it, and
  ``EV_0`` is dropped);
* :func:`from_circuit`: the circuit's residual write per layer, ``lam * (sum_h dmu_h W_O[h] +
  sum_n dmu_n W_out[n])`` (circuit modulation adds ``lam * Delta-mu`` on the units themselves; the
  file adds what those edits write into the residual stream, at the block output);
* :func:`from_va_axis`: ``alpha * sigma * axis`` at the VA axes' layer (the ``va`` command's steering).

:meth:`ControlVector.interventions` reads a file back into ``resid_post`` interventions, so the same
file steers the workbench and llama.cpp.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from jaxtyping import Float

from circuits.core.artifacts import InputError, write_atomic
from circuits.core.hooks import Intervention
from circuits.core.readers import GGUF_ERRORS, as_path, read_gguf

CVEC_ARCH = "controlvector"
META_PREFIX = "emocircuits."
"""Provenance keys the workbench adds (llama.cpp ignores keys it does not read)."""

LLAMA_CPP_ARCH = {
    "LlamaForCausalLM": "llama",
    "Qwen2ForCausalLM": "qwen2",
    "Qwen3ForCausalLM": "qwen3",
    "Gemma2ForCausalLM": "gemma2",
    "MistralForCausalLM": "llama",
    "Gemma3ForCausalLM": "gemma3",
}
"""HF architecture -> llama.cpp's architecture name (the ``model_hint``)."""


class ControlVectorError(InputError):
    """A control-vector file that cannot be read or does not fit the model. ``path`` names the file
    (None for a vector built in memory); the message is one line, ``PATH: problem``."""

    def __init__(self, path: str | os.PathLike | None, message: str) -> None:
        self.path = None if path is None else str(path)
        self.problem = message
        super().__init__(message if path is None else f"{self.path}: {message}")

    def __reduce__(self) -> tuple[Any, ...]:  # picklable with its two arguments
        return (type(self), (self.path, self.problem))


@dataclass
class ControlVector:
    """Vectors added to decoder block outputs: ``vectors[L]`` (``[d_model]``, float32) to block ``L``."""

    vectors: dict[int, torch.Tensor]
    model_hint: str
    meta: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.vectors:
            raise ControlVectorError(None, "a control vector needs at least one layer")
        if 0 in self.vectors:
            raise ControlVectorError(None, "llama.cpp cannot steer block 0 (its control vectors start at layer 1)")
        sizes = {int(v.numel()) for v in self.vectors.values()}
        if len(sizes) != 1:
            raise ControlVectorError(None, f"every direction must have one size (d_model), got sizes {sorted(sizes)}")
        self.vectors = {int(k): v.detach().float().reshape(-1).cpu() for k, v in sorted(self.vectors.items())}
        bad = [k for k, v in self.vectors.items() if not bool(torch.isfinite(v).all())]  # in float32, as stored
        if bad:
            raise ControlVectorError(
                None, f"the direction(s) of layer(s) {bad} hold NaN or infinite values (in float32)"
            )

    @property
    def d_model(self) -> int:
        return int(next(iter(self.vectors.values())).numel())

    def save(self, path: str | os.PathLike) -> Path:
        """Write the GGUF file atomically."""
        import gguf

        def write(tmp: Path) -> None:
            w = gguf.GGUFWriter(str(tmp), CVEC_ARCH)
            w.add_string(f"{CVEC_ARCH}.model_hint", self.model_hint)
            w.add_uint32(f"{CVEC_ARCH}.layer_count", len(self.vectors))
            for k, v in self.meta.items():
                w.add_string(META_PREFIX + k, str(v))
            for layer, v in self.vectors.items():
                w.add_tensor(f"direction.{layer}", v.numpy().astype(np.float32))
            w.write_header_to_file()
            w.write_kv_data_to_file()
            w.write_tensors_to_file()
            w.close()

        return write_atomic(path, write)

    @classmethod
    def load(cls, path: str | os.PathLike, model: Any = None) -> "ControlVector":
        """Read a control-vector GGUF (ours, repeng's, or any file llama.cpp's loader accepts). A missing,
        truncated or damaged file, or directions holding NaN / inf, raise :class:`ControlVectorError`
        naming the file; with ``model`` (a ModelHandle) the vector is also checked against it
        (:meth:`check`: size, layers, and the fingerprint the workbench recorded)."""
        cv = cls._read(as_path(path, "ControlVector.load: path"))
        if model is not None:
            try:
                cv.check(model)
            except ControlVectorError as err:
                raise ControlVectorError(path, err.problem) from None
        return cv

    @classmethod
    def _read(cls, p: Path) -> "ControlVector":
        r = read_gguf(p, what="control-vector GGUF file", error=lambda msg: ControlVectorError(None, msg))
        try:
            fields = {name: _field_value(f) for name, f in r.fields.items()}
            tensors = [(t.name, np.array(t.data, dtype=np.float32).reshape(-1)) for t in r.tensors]
        except GGUF_ERRORS as err:
            raise ControlVectorError(p, f"not a readable GGUF file, truncated or damaged ({err})") from None
        arch = fields.get("general.architecture")
        if arch != CVEC_ARCH:
            raise ControlVectorError(p, f"general.architecture is {arch!r}, expected {CVEC_ARCH!r}")
        vectors: dict[int, torch.Tensor] = {}
        for name, data in tensors:
            if not name.startswith("direction."):
                raise ControlVectorError(p, f"tensor {name!r}: expected names direction.<layer>")
            try:
                layer = int(name.split(".", 1)[1])
            except ValueError:
                raise ControlVectorError(p, f"tensor {name!r}: the layer after 'direction.' is not a number") from None
            if layer <= 0:
                raise ControlVectorError(p, f"tensor {name!r}: layers start at 1 (llama.cpp's convention)")
            if not np.isfinite(data).all():
                raise ControlVectorError(p, f"tensor {name!r}: holds NaN or infinite values")
            vectors[layer] = torch.from_numpy(data)
        meta = {k[len(META_PREFIX) :]: str(v) for k, v in fields.items() if k.startswith(META_PREFIX)}
        try:
            return cls(vectors, str(fields.get(f"{CVEC_ARCH}.model_hint", "")), meta)
        except ControlVectorError as err:
            raise ControlVectorError(p, err.problem) from None

    def check(self, model: Any) -> None:
        """Refuse a vector whose size or layers do not fit ``model`` (a ModelHandle), or whose recorded
        fingerprint (``meta["fingerprint"]``, written by the workbench) is another model's."""
        fp = self.meta.get("fingerprint")
        if fp and getattr(model, "fingerprint", None) is not None and fp != str(model.fingerprint):
            made_on = self.meta.get("model", "another model")
            raise ControlVectorError(
                None,
                f"the control vector was made on {made_on!r} (fingerprint {fp}), not on "
                f"{getattr(model, 'name', '?')!r} (fingerprint {model.fingerprint})",
            )
        a = model.arch
        if self.d_model != a.d_model:
            raise ControlVectorError(None, f"directions have size {self.d_model}, the model's d_model is {a.d_model}")
        bad = [L for L in self.vectors if L >= a.n_layers]
        if bad:
            raise ControlVectorError(None, f"layers {bad} do not exist (the model has blocks 0-{a.n_layers - 1})")

    def interventions(self, model: Any = None, scale: float = 1.0, positions: str = "all") -> list[Intervention]:
        """``scale * direction.L`` added to ``resid_post`` of block ``L``: what llama.cpp does
        (``positions="all"``: prompt and generated tokens)."""
        if model is not None:
            self.check(model)
        return [
            Intervention("resid_post", L, "add", vector=v, factor=float(scale), positions=positions)
            for L, v in self.vectors.items()
        ]

    def llama_cpp_buffer(self, n_layers: int, scale: float = 1.0) -> np.ndarray:
        """The flat float32 buffer ``llama_set_adapter_cvec`` takes: ``n_embd`` floats per layer from
        layer 1 to ``n_layers - 1`` (zeros where the file has no direction)."""
        buf = np.zeros((n_layers - 1, self.d_model), dtype=np.float32)
        for L, v in self.vectors.items():
            buf[L - 1] = scale * v.numpy()
        return buf.reshape(-1)


def _field_value(f: Any) -> Any:
    """A GGUF reader field as a Python value (strings decoded, one-element arrays unwrapped)."""
    try:
        return f.contents()
    except Exception:  # older gguf: read the parts by hand
        part = f.parts[f.data[0]] if f.data else None
        if part is None:
            return None
        if part.dtype == np.uint8:
            return bytes(part).decode("utf-8", "replace")
        return part.tolist()[0] if len(part) == 1 else part.tolist()


def model_hint(model: Any) -> str:
    """llama.cpp's architecture name for ``model`` (a ModelHandle); the HF name lower-cased if unknown."""
    arch = model.arch.architecture
    return LLAMA_CPP_ARCH.get(arch, arch.replace("ForCausalLM", "").lower())


def _provenance(model: Any, **extra: Any) -> dict[str, str]:
    return {"model": str(model.name), "fingerprint": str(model.fingerprint), **{k: str(v) for k, v in extra.items()}}


def from_directions(
    model: Any,
    directions: Any,
    emotion: str,
    layers: Sequence[int],
    alpha: float,
    sigma: Float[torch.Tensor, "n_layers 2"],
) -> ControlVector:
    """Direction steering as a file: ``alpha * sigma[L, mlp] * v_e^L`` for each of ``layers`` (``sigma``:
    :func:`circuits.discovery.influence.residual_sigma` of the run's store)."""
    vecs = {int(L): float(alpha) * float(sigma[L, 1]) * directions.get("mlp", L, emotion) for L in layers if L > 0}
    return ControlVector(
        vecs,
        model_hint(model),
        _provenance(model, source="direction", emotion=emotion, strength=alpha, strength_unit="x mean residual RMS"),
    )


def from_emotion_vectors(
    model: Any,
    ev: Float[torch.Tensor, "n_emotions n_layers d_model"],
    ev_emotions: Sequence[str],
    emotion: str,
    alpha: float,
) -> ControlVector:
    """Emotion Vector steering as a file: ``alpha * EV_L`` at block ``L`` for ``L >= 1``."""
    e = list(ev_emotions).index(emotion)
    vecs = {L: float(alpha) * ev[e, L] for L in range(1, ev.shape[1])}
    return ControlVector(
        vecs,
        model_hint(model),
        _provenance(
            model,
            source="emotion_vector",
            emotion=emotion,
            strength=alpha,
            note="EV_L is added to block L's output (the workbench adds it to layer L's attention output); EV_0 dropped",
        ),
    )


@torch.no_grad()
def circuit_unit_writes(circuit: Any, model: Any) -> dict[str, torch.Tensor]:
    """Per circuit unit (``a{L}.h{H}``, ``m{L}.n{N}``), its Delta-mu write into the residual stream,
    ``dmu_h @ W_O[h]`` or ``dmu_n * W_out[n]`` (``[d_model]`` each)."""
    out = {}
    for lc in circuit.layers:
        L = lc.layer
        if lc.heads:
            dmu = circuit.delta_mu[f"attn.{L}"].float()  # [k, d_head]
            W_O = model.W_O(L).detach().float().cpu()  # [n_heads, d_head, d_model]
            out.update({f"a{L}.h{h}": dmu[j] @ W_O[h] for j, h in enumerate(lc.heads)})
        if lc.neurons:
            dmu = circuit.delta_mu[f"mlp.{L}"].float()  # [k]
            W_out = model.W_out(L).detach().float().cpu()  # [d_mlp, d_model]
            out.update({f"m{L}.n{n}": dmu[j] * W_out[n] for j, n in enumerate(lc.neurons)})
    return out


def circuit_residual_write(circuit: Any, model: Any, lam: float = 1.0) -> dict[int, torch.Tensor]:
    """Per layer, what circuit modulation's ``lam * Delta-mu`` edits write into the residual stream:
    ``lam`` x the sum of the layer's :func:`circuit_unit_writes` (``[d_model]`` each). Refuses post-norm
    models (Gemma2: the write passes through a per-token norm)."""
    if model.arch.post_norms:
        raise ControlVectorError(
            None,
            f"{model.arch.architecture} normalises sublayer outputs (post-norms): a "
            "circuit's write is not a constant residual vector there",
        )
    units = circuit_unit_writes(circuit, model)
    out: dict[int, torch.Tensor] = {}
    for lc in circuit.layers:
        L = lc.layer
        w = torch.zeros(model.arch.d_model)
        for key in [f"a{L}.h{h}" for h in lc.heads] + [f"m{L}.n{n}" for n in lc.neurons]:
            w += units[key]
        out[L] = float(lam) * w
    return out


def from_circuit(circuit: Any, model: Any, lam: float = 1.0) -> ControlVector:
    """A circuit's residual-equivalent as a file (:func:`circuit_residual_write`; block 0's write dropped)."""
    writes = {L: v for L, v in circuit_residual_write(circuit, model, lam).items() if L > 0}
    return ControlVector(
        writes,
        model_hint(model),
        _provenance(
            model,
            source="circuit",
            emotion=circuit.emotion,
            strength=lam,
            strength_unit="lambda x Delta-mu",
            note="sum of the circuit's heads' and neurons' Delta-mu writes (W_O, W_out) per layer, at the block output",
        ),
    )


def from_va_axis(model: Any, axes: Any, which: str, alpha: float, sigma: float) -> ControlVector:
    """``alpha * sigma * axis`` (``which``: ``valence`` or ``arousal``) at the axes' layer."""
    if which not in ("valence", "arousal"):
        raise ValueError(f"which must be 'valence' or 'arousal', got {which!r}")
    return ControlVector(
        {int(axes.layer): float(alpha) * float(sigma) * getattr(axes, which)},
        model_hint(model),
        _provenance(model, source=f"va_{which}", strength=alpha, strength_unit="x mean residual RMS"),
    )
