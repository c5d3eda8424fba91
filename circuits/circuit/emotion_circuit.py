"""The circuit data model (:class:`LayerCircuit`, :class:`Circuit`) and its files: save, load with
validation, and the directory helpers :func:`save_circuits` / :func:`load_circuits`.

A circuit for one emotion is a set of MLP neurons and attention heads per layer (arXiv 2510.11328),
built by :func:`circuits.circuit.assemble.assemble_circuit`. On disk it is a JSON file (described
by :data:`~circuits.circuit.schema.CIRCUIT_JSON_SCHEMA`, checked by
:func:`~circuits.circuit.schema.validate_circuit_json`) plus a safetensors sidecar with the same stem
holding the Delta-mu vectors of the selected units::

    anger.json          {"schema_version": 2, "kind": "emotion-circuit", "emotion": "anger", ...}
    anger.safetensors   mlp.{L}: [k_neurons_L]   attn.{L}: [k_heads_L, d_head]

:meth:`Circuit.to_graph` gives the circuit in EAP-IG's graph JSON layout
(:mod:`circuits.circuit.graph`). A little over 400 lines: the class keeps its own checks of its
tensors and files next to the fields they check, as one reviewable unit.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import torch
from safetensors.torch import save_file

from circuits.circuit.allocation import AllocationConfig
from circuits.circuit.schema import CIRCUIT_KIND, SCHEMA_VERSION, validate_circuit_json
from circuits.core.arch import ArchInfo
from circuits.core.artifacts import InputError, ModelMismatch, write_atomic, write_json_atomic
from circuits.core.emotions import EMOTIONS, check_emotions
from circuits.core.readers import as_path, read_json, read_safetensors


class CircuitFormatError(InputError):
    """A circuit file is missing, unreadable or does not follow :data:`CIRCUIT_JSON_SCHEMA`.

    ``path`` is the offending file and ``problems`` the list of everything found wrong; the message
    names the file and every problem (with its JSON path, e.g. ``layers[3].mlp.neurons[5]``).
    """

    def __init__(self, path: str | os.PathLike, problems: str | Sequence[str]) -> None:
        self.path = str(path)
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        if len(self.problems) == 1:
            msg = f"{self.path}: {self.problems[0]}"
        else:
            msg = f"{self.path}: {len(self.problems)} problems:\n" + "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(msg)


# --------------------------------------------------------------------------------------------------
# the circuit


@dataclass
class LayerCircuit:
    """The units of one layer in a circuit, in descending score order.

    ``neurons`` / ``neuron_scores``: MLP neuron indices (< d_mlp) and their scores, equal lengths.
    ``heads`` / ``head_scores``: attention head indices (< n_heads) and their scores, equal lengths.
    """

    layer: int
    neurons: list[int] = field(default_factory=list)
    neuron_scores: list[float] = field(default_factory=list)
    heads: list[int] = field(default_factory=list)
    head_scores: list[float] = field(default_factory=list)


@dataclass(eq=False)
class Circuit:
    """One emotion's circuit.

    Attributes:
        emotion: one of :data:`circuits.core.emotions.EMOTIONS`.
        model: ``{"name", "fingerprint", "arch"}`` with ``arch = ArchInfo.to_dict()``.
        allocation: the :class:`AllocationConfig` the budget came from.
        layers: one :class:`LayerCircuit` per layer, ``layers[L].layer == L``.
        influence: ``{"attn": [n_layers floats], "mlp": [n_layers floats]}``, the sublayer influence
            the allocation used (signed; only its positive part drives the split).
        delta_mu: ``"mlp.{L}"`` -> [k_neurons_L] (Delta-mu of each selected neuron, same order as
            ``layers[L].neurons``) and ``"attn.{L}"`` -> [k_heads_L, d_head] (Delta-mu of each
            selected head's z vector, same order as ``layers[L].heads``), for every layer L.
        meta: free-form JSON-serialisable facts (dataset hash, number of rows, ...).
        faithfulness: the block of :func:`circuits.circuit.ablation_faithfulness.circuit_faithfulness`, or None
            (not measured; always None for schema-version-1 files).

    Equality compares every field, tensors with :func:`torch.equal` (dtype included).
    """

    emotion: str
    model: dict[str, Any]
    allocation: AllocationConfig
    layers: list[LayerCircuit]
    influence: dict[str, list[float]]
    delta_mu: dict[str, torch.Tensor]
    meta: dict[str, Any] = field(default_factory=dict)
    faithfulness: dict[str, Any] | None = None

    # ------------------------------------------------------------------ views
    @property
    def arch(self) -> ArchInfo:
        return ArchInfo.from_dict(self.model["arch"])

    @property
    def n_layers(self) -> int:
        return int(self.model["arch"]["n_layers"])

    @property
    def n_neurons(self) -> int:
        """Total number of MLP neurons in the circuit."""
        return sum(len(lc.neurons) for lc in self.layers)

    @property
    def n_heads(self) -> int:
        """Total number of attention heads in the circuit."""
        return sum(len(lc.heads) for lc in self.layers)

    def neuron_index(self) -> dict[int, list[int]]:
        """Layer -> selected neuron indices (every layer of the circuit, possibly empty lists)."""
        return {lc.layer: list(lc.neurons) for lc in self.layers}

    def head_index(self) -> dict[int, list[int]]:
        """Layer -> selected head indices (every layer of the circuit, possibly empty lists)."""
        return {lc.layer: list(lc.heads) for lc in self.layers}

    def budget(self) -> dict[str, int]:
        """``{"total", "neurons", "heads"}`` budget sizes for this circuit's model (see AllocationConfig.budget)."""
        b = self.allocation.budget(self.n_layers)
        return {"total": b["total"], "neurons": b["neurons"], "heads": b["heads"]}

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Circuit):
            return NotImplemented
        if (self.emotion, self.model, self.allocation, self.layers, self.influence, self.meta, self.faithfulness) != (
            other.emotion,
            other.model,
            other.allocation,
            other.layers,
            other.influence,
            other.meta,
            other.faithfulness,
        ):
            return False
        if set(self.delta_mu) != set(other.delta_mu):
            return False
        return all(
            self.delta_mu[k].dtype == other.delta_mu[k].dtype
            and torch.equal(self.delta_mu[k].cpu(), other.delta_mu[k].cpu())
            for k in self.delta_mu
        )

    __hash__ = None  # type: ignore[assignment]

    # ------------------------------------------------------------------ JSON
    def to_json(self, delta_mu_file: str | None = None) -> dict[str, Any]:
        """The circuit as a JSON object following :data:`CIRCUIT_JSON_SCHEMA` (tensors excluded;
        ``delta_mu_file`` names the sidecar, default ``{emotion}.safetensors``)."""
        obj = {
            "schema_version": SCHEMA_VERSION,
            "kind": CIRCUIT_KIND,
            "emotion": self.emotion,
            "model": {
                "name": self.model["name"],
                "fingerprint": self.model["fingerprint"],
                "arch": dict(self.model["arch"]),
            },
            "allocation": self.allocation.to_dict(),
            "budget": self.budget(),
            "influence": {
                "attn": [float(x) for x in self.influence["attn"]],
                "mlp": [float(x) for x in self.influence["mlp"]],
            },
            "layers": [
                {
                    "layer": int(lc.layer),
                    "mlp": {
                        "k": len(lc.neurons),
                        "neurons": [int(i) for i in lc.neurons],
                        "scores": [float(s) for s in lc.neuron_scores],
                    },
                    "attention": {
                        "k": len(lc.heads),
                        "heads": [int(h) for h in lc.heads],
                        "scores": [float(s) for s in lc.head_scores],
                    },
                }
                for lc in self.layers
            ],
            "delta_mu_file": delta_mu_file or f"{self.emotion}.safetensors",
            "meta": dict(self.meta),
        }
        if self.faithfulness is not None:
            obj["faithfulness"] = dict(self.faithfulness)
        return obj

    @classmethod
    def from_json(cls, obj: Mapping[str, Any], delta_mu: Mapping[str, torch.Tensor]) -> "Circuit":
        """Build a circuit from an already validated JSON object and its sidecar tensors."""
        layers = [
            LayerCircuit(
                layer=int(e["layer"]),
                neurons=[int(i) for i in e["mlp"]["neurons"]],
                neuron_scores=[float(s) for s in e["mlp"]["scores"]],
                heads=[int(h) for h in e["attention"]["heads"]],
                head_scores=[float(s) for s in e["attention"]["scores"]],
            )
            for e in obj["layers"]
        ]
        return cls(
            emotion=str(obj["emotion"]),
            model={
                "name": obj["model"]["name"],
                "fingerprint": obj["model"]["fingerprint"],
                "arch": dict(obj["model"]["arch"]),
            },
            allocation=AllocationConfig.from_dict(obj["allocation"]),
            layers=layers,
            influence={
                "attn": [float(x) for x in obj["influence"]["attn"]],
                "mlp": [float(x) for x in obj["influence"]["mlp"]],
            },
            delta_mu={k: v for k, v in delta_mu.items()},
            meta=dict(obj["meta"]),
            faithfulness=dict(obj["faithfulness"]) if obj.get("faithfulness") is not None else None,
        )

    def tensor_problems(self, delta_mu: Mapping[str, torch.Tensor] | None = None) -> list[str]:
        """Problems of the Delta-mu tensors (``self.delta_mu`` or the given ones) against the layers:
        keys exactly ``mlp.{L}`` / ``attn.{L}`` for every layer, shapes [k_neurons_L] and
        [k_heads_L, d_head], floating dtype."""
        tensors = self.delta_mu if delta_mu is None else delta_mu
        d_head = int(self.model["arch"]["d_head"])
        problems: list[str] = []
        expected: dict[str, tuple[int, ...]] = {}
        for lc in self.layers:
            expected[f"mlp.{lc.layer}"] = (len(lc.neurons),)
            expected[f"attn.{lc.layer}"] = (len(lc.heads), d_head)
        for key, shape in expected.items():
            if key not in tensors:
                problems.append(f"delta_mu: tensor {key!r} missing (expected shape {list(shape)})")
                continue
            t = tensors[key]
            if not isinstance(t, torch.Tensor):
                problems.append(f"delta_mu[{key!r}]: expected a torch.Tensor, got {type(t).__name__}")
            elif tuple(t.shape) != shape:
                problems.append(f"delta_mu[{key!r}]: shape {list(t.shape)}, expected {list(shape)}")
            elif not t.is_floating_point():
                problems.append(f"delta_mu[{key!r}]: dtype {t.dtype} is not a floating dtype")
            elif not bool(torch.isfinite(t).all()):
                problems.append(f"delta_mu[{key!r}]: {int((~torch.isfinite(t)).sum())} value(s) are NaN or infinite")
        for key in sorted(set(tensors) - set(expected)):
            problems.append(f"delta_mu: unexpected tensor {key!r}")
        return problems

    # ------------------------------------------------------------------ files
    def save(self, path: str | os.PathLike) -> Path:
        """Write ``path`` (must end in ``.json``) and the sidecar ``<stem>.safetensors`` beside it.

        Both are written atomically, the sidecar first, so a JSON file on disk always has its
        sidecar. The circuit is validated first; an invalid one raises :class:`CircuitFormatError`
        and writes nothing. Returns the JSON path.
        """
        path = Path(path)
        if path.suffix != ".json":
            raise ValueError(f"Circuit.save: the path must end in .json, got {str(path)!r}")
        sidecar = path.with_suffix(".safetensors")
        obj = self.to_json(sidecar.name)
        problems = validate_circuit_json(obj) + self.tensor_problems()
        try:
            json.dumps(obj["meta"], allow_nan=False)
        except (TypeError, ValueError) as err:
            problems.append(f"meta: not JSON-serialisable ({err})")
        if problems:
            raise CircuitFormatError(path, ["refusing to write an invalid circuit"] + problems)
        tensors = {k: v.detach().to("cpu").contiguous() for k, v in self.delta_mu.items()}
        metadata = {
            "kind": CIRCUIT_KIND,
            "schema_version": str(SCHEMA_VERSION),
            "emotion": self.emotion,
            "fingerprint": str(self.model["fingerprint"]),
        }
        write_atomic(sidecar, lambda p: save_file(tensors, str(p), metadata=metadata))
        write_json_atomic(path, obj)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike, model: Any = None) -> "Circuit":
        """Read and validate a circuit written by :meth:`save`.

        Args:
            path: the circuit JSON file.
            model: optional; anything with ``.fingerprint`` and ``.arch`` (a ModelHandle). When given,
                the circuit must have been built for that model.

        Raises:
            CircuitFormatError: missing or unreadable file, invalid JSON, unknown schema_version,
                any schema violation (every problem listed with its JSON path), missing sidecar or
                sidecar tensors of the wrong shape.
            ModelMismatch: ``model`` has another fingerprint (or architecture).
        """
        path = as_path(path, "Circuit.load: path")
        if not path.is_file():
            raise CircuitFormatError(path, "circuit file not found")
        # NaN / inf pass the decoder: the schema refuses them with their JSON path
        obj = read_json(path, what="circuit file", top=None, allow_nan=True, error=_format_error(path))
        problems = validate_circuit_json(obj)
        if problems:
            raise CircuitFormatError(path, problems)
        if model is not None:
            _check_model(path, obj["model"], model)
        sidecar = path.parent / obj["delta_mu_file"]
        if not sidecar.is_file():
            raise CircuitFormatError(
                path, f"delta_mu_file: sidecar {str(sidecar)!r} not found (it must lie next to the JSON file)"
            )
        tensors, meta = read_safetensors(sidecar, what="circuit sidecar", finite=False, error=_format_error(sidecar))
        circuit = cls.from_json(obj, tensors)
        problems = [f"{p} (in {sidecar.name})" for p in circuit.tensor_problems()]
        problems += _sidecar_identity_problems(sidecar, meta, circuit)
        if problems:
            raise CircuitFormatError(path, problems)
        return circuit

    # ------------------------------------------------------------------ graph
    def to_graph(self) -> dict[str, Any]:
        """The circuit in EAP-IG's graph JSON layout: :func:`circuits.circuit.graph.circuit_graph`."""
        from circuits.circuit.graph import circuit_graph

        return circuit_graph(self)

    def save_graph(self, path: str | os.PathLike) -> Path:
        """Write :meth:`to_graph` to ``path`` atomically; returns the path."""
        return write_json_atomic(Path(path), self.to_graph())


def _format_error(path: Path) -> Any:
    """An error factory for :mod:`circuits.core.readers` raising :class:`CircuitFormatError` on ``path``."""
    return lambda msg: CircuitFormatError(path, msg.removeprefix(f"{path}: "))


def _sidecar_identity_problems(sidecar: Path, meta: Mapping[str, str], circuit: "Circuit") -> list[str]:
    """The sidecar's metadata must name the circuit's emotion and model fingerprint (a sidecar
    re-saved without them, or copied from another circuit, could hold another emotion's Delta-mu)."""
    problems: list[str] = []
    for key, want in (("emotion", circuit.emotion), ("fingerprint", str(circuit.model["fingerprint"]))):
        got = meta.get(key)
        if got is None:
            problems.append(
                f"delta_mu_file: the sidecar {sidecar.name} has no {key!r} in its metadata, so it cannot be "
                "matched to this circuit (save the circuit again with Circuit.save)"
            )
        elif got != want:
            problems.append(
                f"delta_mu_file: the sidecar {sidecar.name} holds the Delta-mu of {key} {got!r}, not {want!r}"
            )
    return problems


def _check_model(path: Path, info: Mapping[str, Any], model: Any) -> None:
    fp = getattr(model, "fingerprint", None)
    if fp is None:
        raise InputError(
            f"model: expected a loaded model (an object with .fingerprint and .arch), got {type(model).__name__}"
        )
    given_name = getattr(model, "name", "?")
    if str(fp) != info["fingerprint"]:
        raise ModelMismatch(
            path,
            f"this circuit was built for model {info['name']!r} (fingerprint {info['fingerprint']}), "
            f"but the given model {given_name!r} has fingerprint {fp}",
        )
    arch = getattr(model, "arch", None)
    arch_d = arch.to_dict() if hasattr(arch, "to_dict") else arch
    if arch_d is not None and dict(arch_d) != dict(info["arch"]):
        raise ModelMismatch(
            path,
            f"this circuit was built for model {info['name']!r} with architecture {dict(info['arch'])}, "
            f"but the given model {given_name!r} has {dict(arch_d)}",
        )


# --------------------------------------------------------------------------------------------------
# collections and comparisons


def save_circuits(circuits: Mapping[str, Circuit] | Iterable[Circuit], out_dir: str | os.PathLike) -> list[Path]:
    """Write every circuit as ``out_dir/{emotion}.json`` + ``{emotion}.safetensors``.

    ``circuits`` is an iterable of circuits or a mapping emotion -> circuit (keys must match the
    circuits' emotions). Two circuits for one emotion raise ValueError. Returns the JSON paths.
    """
    if isinstance(circuits, Mapping):
        for key, c in circuits.items():
            if key != c.emotion:
                raise ValueError(f"save_circuits: key {key!r} holds the circuit of {c.emotion!r}")
        items = list(circuits.values())
    else:
        items = list(circuits)
    seen: set[str] = set()
    for c in items:
        if not isinstance(c, Circuit):
            raise ValueError(f"save_circuits: expected Circuit objects, got {type(c).__name__}")
        if c.emotion in seen:
            raise ValueError(f"save_circuits: two circuits for emotion {c.emotion!r}")
        seen.add(c.emotion)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    return [c.save(out / f"{c.emotion}.json") for c in items]


def load_circuits(
    out_dir: str | os.PathLike, model: Any = None, emotions: Iterable[str] | None = None
) -> dict[str, Circuit]:
    """Load the circuits written by :func:`save_circuits`: emotion -> Circuit, in EMOTIONS order.

    With ``emotions=None`` every ``{emotion}.json`` present is loaded (at least one must be);
    otherwise each named emotion must be present. Other files in the directory are ignored.
    ``model`` is passed to :meth:`Circuit.load` (fingerprint check).

    Raises:
        CircuitFormatError: the directory is missing, holds no circuit, a requested one is missing,
            a file is invalid, or a file holds another emotion than its name says.
        ModelMismatch: a circuit was built for another model.
    """
    root = as_path(out_dir, "load_circuits: out_dir")
    if not root.is_dir():
        raise CircuitFormatError(root, "circuit directory not found")
    wanted = EMOTIONS if emotions is None else check_emotions(emotions)
    result: dict[str, Circuit] = {}
    for emo in EMOTIONS:
        if emo not in wanted:
            continue
        path = root / f"{emo}.json"
        if not path.is_file():
            if emotions is not None:
                raise CircuitFormatError(path, f"circuit file for emotion {emo!r} not found")
            continue
        c = Circuit.load(path, model=model)
        if c.emotion != emo:
            raise CircuitFormatError(path, f"emotion: the file is named for {emo!r} but holds {c.emotion!r}")
        result[emo] = c
    if not result:
        raise CircuitFormatError(root, "no circuit files ({emotion}.json for " + ", ".join(EMOTIONS) + ") found")
    return result
