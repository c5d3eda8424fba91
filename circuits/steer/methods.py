"""Steering methods, each expressed as a list of :class:`~circuits.core.hooks.Intervention`.

* :func:`circuit_modulation` (the paper's circuit steering): add ``lam * Delta-mu`` on a circuit's
  neurons (last prompt token, then every generated token) and heads (every position); or scale the
  circuit's neurons and heads by a factor (``mode="scale"``).
* :func:`direction_steering`: add ``alpha * RMS(h) * v_e`` to the residual after the block in a layer
  range (last prompt token and generated tokens).
* :func:`emotion_vector_steering` (Emotion Vectors, section B): add ``alpha * EV_l`` to every layer's
  attention output at the last position; ``EV_l`` = mean over prompts of the token-averaged attention
  output under the emotion prompt minus under the neutral prompt (:func:`emotion_vectors`); several
  emotions combine as ``sum_k alpha_k EV^k``; ``EV_base`` is the mean over emotions.

Where each method acts is part of its description: ``positions="paper"`` (the default) uses the
positions each method was published with (above); ``positions="last"`` acts on the last prompt token
only, the state from which the reply is planned. The toy model needs ``"last"``: the last-token
Delta-mu added at every generated token makes every step start a new reply (see the README).

Prompting (emotion system prompt) and no steering (neutral prompt) need no interventions. Apply any
of these with :func:`circuits.core.generate.generate` (``interventions=...``).
"""

from __future__ import annotations

from typing import Mapping, Sequence

import torch
from jaxtyping import Float
from tqdm.auto import tqdm

from circuits.circuit import Circuit
from circuits.core.artifacts import ModelMismatch
from circuits.core.hooks import Intervention, Read, run_forward
from circuits.core.model import ModelHandle
from circuits.discovery.directions import Directions
from circuits.discovery.store import ActivationStore

STEERING_POSITIONS = ("paper", "last")
"""``paper``: each method's published positions; ``last``: the last prompt token only."""


def _positions(positions: str, paper: str) -> str:
    if positions not in STEERING_POSITIONS:
        raise ValueError(f"positions must be one of {STEERING_POSITIONS}, got {positions!r}")
    return paper if positions == "paper" else "last"


def circuit_modulation(
    circuit: Circuit | str,
    model: ModelHandle,
    lam: float = 1.0,
    mode: str = "add",
    factor: float = 2.0,
    positions: str = "paper",
) -> list[Intervention]:
    """Interventions that modulate ``circuit`` (object or exported ``.json`` path) on ``model``.

    ``mode="add"``: + ``lam * Delta-mu`` on the circuit's neurons and on its heads' z. ``mode="scale"``:
    multiply them by ``factor``. ``positions="paper"``: neurons at ``last+generated``, heads at
    ``all`` positions, as in the paper; ``"last"``: both at the last prompt token only.
    Refuses a circuit whose model fingerprint differs from ``model``'s.
    """
    neuron_pos, head_pos = _positions(positions, "last+generated"), _positions(positions, "all")
    if not isinstance(circuit, Circuit):
        circuit = Circuit.load(circuit, model=model)
    elif circuit.model.get("fingerprint") != model.fingerprint:
        raise ModelMismatch(
            None,
            f"circuit for {circuit.emotion!r} was made on {circuit.model.get('name')!r} "
            f"(fingerprint {circuit.model.get('fingerprint')}), not on {model.name!r} ({model.fingerprint})",
        )
    if mode not in ("add", "scale"):
        raise ValueError(f"mode must be 'add' or 'scale', got {mode!r}")
    out: list[Intervention] = []
    for lc in circuit.layers:
        L = lc.layer
        if lc.neurons:
            if mode == "add":
                out.append(
                    Intervention(
                        "neurons",
                        L,
                        "add",
                        tuple(lc.neurons),
                        vector=circuit.delta_mu[f"mlp.{L}"],
                        factor=lam,
                        positions=neuron_pos,
                    )
                )
            else:
                out.append(Intervention("neurons", L, "scale", tuple(lc.neurons), factor=factor, positions=neuron_pos))
        if lc.heads:
            if mode == "add":
                out.append(
                    Intervention(
                        "heads",
                        L,
                        "add",
                        tuple(lc.heads),
                        vector=circuit.delta_mu[f"attn.{L}"],
                        factor=lam,
                        positions=head_pos,
                    )
                )
            else:
                out.append(Intervention("heads", L, "scale", tuple(lc.heads), factor=factor, positions=head_pos))
    return out


def direction_steering(
    directions: Directions,
    emotion: str,
    layers: Sequence[int],
    alpha: float = 8.0,
    model: ModelHandle | None = None,
    positions: str = "paper",
) -> list[Intervention]:
    """``alpha * RMS(h) * v_e`` added to resid_post of each of ``layers`` (``positions="paper"``: last
    prompt token + generated tokens; ``"last"``: last prompt token only)."""
    where = _positions(positions, "last+generated")
    if model is not None and directions.fingerprint != model.fingerprint:
        raise ModelMismatch(None, f"directions were computed on another model ({directions.fingerprint})")
    return [
        Intervention(
            "resid_post", L, "add_rms", vector=directions.get("mlp", L, emotion), factor=alpha, positions=where
        )
        for L in layers
    ]


def default_direction_layers(n_layers: int) -> list[int]:
    """Layers 11-20 of 28 in the paper: 40%-72% of the depth."""
    lo, hi = round(0.4 * n_layers), max(round(0.4 * n_layers), round(0.72 * n_layers))
    return list(range(lo, min(hi, n_layers - 1) + 1))


@torch.no_grad()
def emotion_vectors(
    model: ModelHandle, store: ActivationStore, batch_size: int = 16, progress: bool = True
) -> Float[torch.Tensor, "n_emotions n_layers d_model"]:
    """``EV[e, l]`` = mean over (scenario, valence) of the token-averaged attention output at layer l
    under emotion e's prompt minus under the neutral prompt (prompt tokens only, padding excluded).

    Read from the store's ``attn_mean`` (captured in the store's own pass) when it has it; a store
    from before that takes a second pass over its prompts (:func:`emotion_vectors_by_pass`, the
    reference the store's values are tested against)."""
    if "attn_mean" not in store.meta.get("tensors", ()):
        return emotion_vectors_by_pass(model, store, batch_size, progress)
    means = store.tensor("attn_mean")

    def mean(idx: torch.Tensor) -> torch.Tensor:
        return means[idx].sum(0) / max(1, len(idx))

    neutral = mean(store.index("neutral"))
    return torch.stack([mean(store.index("emotion", e)) - neutral for e in store.emotions])


def emotion_vectors_by_pass(
    model: ModelHandle, store: ActivationStore, batch_size: int = 16, progress: bool = True
) -> Float[torch.Tensor, "n_emotions n_layers d_model"]:
    """:func:`emotion_vectors` computed with forward passes over the store's prompts (for stores without
    ``attn_mean``)."""
    L, d = model.arch.n_layers, model.arch.d_model
    reads = [Read("attn_out", layer, positions="mean") for layer in range(L)]

    def mean_attn(idx: torch.Tensor, neutral: bool) -> torch.Tensor:
        prompts = store.prompts(model, idx, neutral=neutral)
        total = torch.zeros(L, d)
        for s in range(0, len(prompts), batch_size):
            ids, mask = model.pad_left(prompts[s : s + batch_size])
            got = run_forward(model, ids, mask, reads=reads)
            total += torch.stack([got[r] for r in reads], 1).sum(0)
        return total / max(1, len(prompts))

    neutral = mean_attn(store.index("neutral"), True)
    out = []
    for e in tqdm(store.emotions, desc="emotion vectors", disable=not progress):
        out.append(mean_attn(store.index("emotion", e), False) - neutral)
    return torch.stack(out)


def emotion_vector_steering(
    ev: Float[torch.Tensor, "n_emotions n_layers d_model"],
    ev_emotions: Sequence[str],
    alphas: Mapping[str, float],
    base: float | None = None,
    positions: str = "paper",
) -> list[Intervention]:
    """``sum_k alpha_k EV^k_l`` added to the attention output of every layer at the last position
    (last prompt token, then each generated token). ``ev_emotions`` names ``ev``'s first axis;
    ``alphas`` maps emotions to their alpha (one entry for single-emotion steering). With ``base``
    set, ``base * EV_base`` (the mean of all emotion vectors) is added instead. ``positions="last"``:
    the last prompt token only."""
    where = _positions(positions, "last+generated")
    if base is not None:
        vec = float(base) * ev.mean(0)
    else:
        unknown = [e for e in alphas if e not in ev_emotions]
        if unknown or not alphas:
            raise ValueError(f"alphas must name emotions of the vectors {list(ev_emotions)}, got {list(alphas)}")
        vec = sum(float(a) * ev[list(ev_emotions).index(e)] for e, a in alphas.items())
    return [Intervention("attn_out", L, "add", vector=vec[L], factor=1.0, positions=where) for L in range(vec.shape[0])]
