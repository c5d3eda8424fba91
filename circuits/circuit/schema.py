"""The circuit JSON format: its schema (:data:`CIRCUIT_JSON_SCHEMA`) and a validator that names every problem by JSON path."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Mapping

from circuits.circuit.allocation import AllocationConfig
from circuits.core.arch import ArchInfo
from circuits.core.emotions import EMOTIONS

SCHEMA_VERSION = 2
"""Version of the circuit JSON format written by :meth:`Circuit.save` (2 adds the optional
``faithfulness`` block; version 1 files, which never have it, still load)."""
SUPPORTED_SCHEMA_VERSIONS: tuple[int, ...] = (1, 2)
CIRCUIT_KIND = "emotion-circuit"


_ARCH_INT_FIELDS = ("n_layers", "n_heads", "n_kv_heads", "d_model", "d_head", "d_mlp", "d_vocab")


def _int(minimum: int | None = None) -> dict[str, Any]:
    return {"type": "integer"} if minimum is None else {"type": "integer", "minimum": minimum}


_NUMBER = {"type": "number"}

CIRCUIT_JSON_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "emotion circuit (schema_version 2)",
    "description": (
        "One emotion's circuit: selected MLP neurons and attention heads per layer, with their scores. "
        "The Delta-mu vectors lie in the safetensors sidecar named by delta_mu_file (tensors mlp.{L}: "
        "[k], attn.{L}: [k, d_head]). Beyond this structure validate_circuit_json checks: layers lists "
        "every layer 0..n_layers-1 in order; neurons < d_mlp and heads < n_heads without duplicates; "
        "k and the scores match the number of indices; influence lists have n_layers finite entries; "
        "budget equals what allocation gives for n_layers; delta_mu_file is a bare file name."
    ),
    "type": "object",
    "required": [
        "schema_version",
        "kind",
        "emotion",
        "model",
        "allocation",
        "budget",
        "influence",
        "layers",
        "delta_mu_file",
        "meta",
    ],
    "properties": {
        "schema_version": {
            "enum": list(SUPPORTED_SCHEMA_VERSIONS),
            "description": "format version; this library reads 1 and 2",
        },
        "kind": {"const": CIRCUIT_KIND},
        "emotion": {"type": "string", "enum": list(EMOTIONS)},
        "model": {
            "type": "object",
            "required": ["name", "fingerprint", "arch"],
            "properties": {
                "name": {"type": "string"},
                "fingerprint": {
                    "type": "string",
                    "minLength": 1,
                    "description": "circuits.core.model fingerprint; loading for another model fails",
                },
                "arch": {
                    "type": "object",
                    "description": "ArchInfo.to_dict()",
                    "required": list(ArchInfo.__dataclass_fields__),
                    "properties": {
                        "architecture": {"type": "string"},
                        **{k: _int(1) for k in _ARCH_INT_FIELDS},
                        "gated_mlp": {"type": "boolean"},
                        "post_norms": {"type": "boolean"},
                    },
                },
            },
        },
        "allocation": {
            "type": "object",
            "description": "AllocationConfig.to_dict()",
            "required": list(AllocationConfig.__dataclass_fields__),
            "additionalProperties": False,
            "properties": {
                "budget_per_sublayer": _int(1),
                "neuron_share": {"type": "number", "minimum": 0, "maximum": 1},
                "min_neurons": _int(0),
                "min_heads": _int(0),
                "cap_fraction": {"type": "number", "exclusiveMinimum": 0, "maximum": 1},
            },
        },
        "budget": {
            "type": "object",
            "required": ["total", "neurons", "heads"],
            "properties": {"total": _int(0), "neurons": _int(0), "heads": _int(0)},
        },
        "influence": {
            "type": "object",
            "required": ["attn", "mlp"],
            "properties": {
                "attn": {"type": "array", "items": _NUMBER, "description": "[n_layers] attention influence"},
                "mlp": {"type": "array", "items": _NUMBER, "description": "[n_layers] MLP influence"},
            },
        },
        "layers": {
            "type": "array",
            "description": "one entry per layer, in layer order",
            "items": {
                "type": "object",
                "required": ["layer", "mlp", "attention"],
                "properties": {
                    "layer": _int(0),
                    "mlp": {
                        "type": "object",
                        "required": ["k", "neurons", "scores"],
                        "properties": {
                            "k": _int(0),
                            "neurons": {"type": "array", "items": _int(0), "description": "indices < d_mlp"},
                            "scores": {"type": "array", "items": _NUMBER, "description": "one per neuron"},
                        },
                    },
                    "attention": {
                        "type": "object",
                        "required": ["k", "heads", "scores"],
                        "properties": {
                            "k": _int(0),
                            "heads": {"type": "array", "items": _int(0), "description": "indices < n_heads"},
                            "scores": {"type": "array", "items": _NUMBER, "description": "one per head"},
                        },
                    },
                },
            },
        },
        "delta_mu_file": {"type": "string", "minLength": 1, "description": "sidecar file name, same directory"},
        "meta": {"type": "object", "description": "free-form"},
        "faithfulness": {
            "type": "object",
            "description": "optional (schema_version 2): circuits.circuit.ablation_faithfulness.circuit_faithfulness",
            "required": ["metric", "ablation", "rows", "scores", "faithfulness", "ablation_loss", "random"],
            "properties": {
                "metric": {"type": "string"},
                "ablation": {"type": "string"},
                "rows": _int(1),
                "scores": {
                    "type": "object",
                    "required": ["full", "empty", "circuit", "ablated"],
                    "properties": {k: _NUMBER for k in ("full", "empty", "circuit", "ablated")},
                },
                "faithfulness": _NUMBER,
                "ablation_loss": _NUMBER,
                "random": {
                    "type": "object",
                    "required": ["faithfulness", "ablation_loss", "n_seeds"],
                    "properties": {
                        "faithfulness": {"type": "object", "required": ["mean", "std", "seeds"]},
                        "ablation_loss": {"type": "object", "required": ["mean", "std", "seeds"]},
                        "n_seeds": _int(0),
                    },
                },
            },
        },
    },
}
"""JSON Schema (draft 2020-12 subset) of the circuit file. :func:`validate_circuit_json` walks it
(keywords used: type, const, enum, required, properties, additionalProperties, items, minimum,
maximum, exclusiveMinimum, minLength) and then applies the cross-field checks listed in its
``description``."""

_JSON_TYPES: dict[str, Any] = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "boolean": lambda v: isinstance(v, bool),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
}


def _join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def _walk(value: Any, schema: Mapping[str, Any], path: str, problems: list[str]) -> None:
    where = path or "(root)"
    if "const" in schema and value != schema["const"]:
        problems.append(f"{where}: expected {schema['const']!r}, got {value!r}")
        return
    if "type" in schema and not _JSON_TYPES[schema["type"]](value):
        problems.append(f"{where}: expected {schema['type']}, got {type(value).__name__} {value!r:.60}")
        return
    if "enum" in schema and value not in schema["enum"]:
        problems.append(f"{where}: {value!r} is not one of {', '.join(map(str, schema['enum']))}")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if isinstance(value, float) and not math.isfinite(value):
            problems.append(f"{where}: must be a finite number, got {value!r}")
        elif "minimum" in schema and value < schema["minimum"]:
            problems.append(f"{where}: must be >= {schema['minimum']}, got {value!r}")
        elif "maximum" in schema and value > schema["maximum"]:
            problems.append(f"{where}: must be <= {schema['maximum']}, got {value!r}")
        elif "exclusiveMinimum" in schema and value <= schema["exclusiveMinimum"]:
            problems.append(f"{where}: must be > {schema['exclusiveMinimum']}, got {value!r}")
    if isinstance(value, str) and len(value) < schema.get("minLength", 0):
        problems.append(f"{where}: must not be empty")
    if isinstance(value, dict):
        for key in schema.get("required", ()):
            if key not in value:
                problems.append(f"{_join(path, key)}: required field missing")
        props = schema.get("properties", {})
        for key, sub in props.items():
            if key in value:
                _walk(value[key], sub, _join(path, key), problems)
        if schema.get("additionalProperties") is False:
            for key in value:
                if key not in props:
                    problems.append(f"{_join(path, key)}: unknown field")
    if isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            _walk(item, schema["items"], _join(path, i), problems)


def _get(obj: Any, *keys: str | int) -> Any:
    """Follow keys into nested dicts/lists; None when any step is missing or of the wrong type."""
    for k in keys:
        if isinstance(k, int):
            if not isinstance(obj, list) or not 0 <= k < len(obj):
                return None
        elif not isinstance(obj, dict) or k not in obj:
            return None
        obj = obj[k]
    return obj


def _check_units(
    entry: Any, path: str, kind: str, idx_key: str, bound: int | None, bound_name: str, problems: list[str]
) -> None:
    idx, scores, k = _get(entry, idx_key), _get(entry, "scores"), _get(entry, "k")
    if not isinstance(idx, list):
        return
    ints = [(j, v) for j, v in enumerate(idx) if _JSON_TYPES["integer"](v)]
    if bound is not None:
        for j, v in ints:
            if not 0 <= v < bound:
                problems.append(
                    f"{path}.{idx_key}[{j}]: {kind} index {v} out of range for {bound_name}={bound} "
                    f"(valid 0..{bound - 1})"
                )
    seen: set[int] = set()
    for j, v in ints:
        if v in seen:
            problems.append(f"{path}.{idx_key}[{j}]: duplicate {kind} index {v}")
        seen.add(v)
    if isinstance(scores, list) and len(scores) != len(idx):
        problems.append(f"{path}.scores: {len(scores)} entries but {idx_key} has {len(idx)}")
    if _JSON_TYPES["integer"](k) and k != len(idx):
        problems.append(f"{path}.k: {k} but {idx_key} has {len(idx)} entries")


def validate_circuit_json(obj: Any) -> list[str]:
    """Every problem of a circuit JSON object, each prefixed with its JSON path; [] when valid.

    An unknown ``schema_version`` is reported alone (``"unknown schema_version X (this library
    reads 1)"``), since the rest of such a file follows another format. Otherwise the object is
    checked against :data:`CIRCUIT_JSON_SCHEMA`, then the cross-field rules: arch-dependent index
    ranges (``layers[L].mlp.neurons[j] < d_mlp``, ``layers[L].attention.heads[j] < n_heads``), no
    duplicate indices, ``k`` and ``scores`` lengths, one ``layers`` entry per layer in order,
    ``influence`` lengths, ``budget`` consistent with ``allocation``, a bare ``delta_mu_file`` name.
    """
    if not isinstance(obj, dict):
        return [f"(root): expected a JSON object, got {type(obj).__name__}"]
    if "schema_version" not in obj:
        return ["schema_version: required field missing"]
    version = obj["schema_version"]
    if not _JSON_TYPES["integer"](version) or version not in SUPPORTED_SCHEMA_VERSIONS:
        readable = ", ".join(map(str, SUPPORTED_SCHEMA_VERSIONS))
        return [f"unknown schema_version {version!r} (this library reads {readable})"]
    problems: list[str] = []
    _walk(obj, CIRCUIT_JSON_SCHEMA, "", problems)

    arch = _get(obj, "model", "arch")
    dims: dict[str, int | None] = {k: None for k in _ARCH_INT_FIELDS}
    if isinstance(arch, dict):
        for k in _ARCH_INT_FIELDS:
            v = arch.get(k)
            if _JSON_TYPES["integer"](v) and v >= 1:
                dims[k] = v
    n_layers = dims["n_layers"]

    for kind in ("attn", "mlp"):
        vals = _get(obj, "influence", kind)
        if isinstance(vals, list) and n_layers is not None and len(vals) != n_layers:
            problems.append(f"influence.{kind}: {len(vals)} entries, expected n_layers={n_layers}")

    layers = obj.get("layers")
    if isinstance(layers, list):
        if n_layers is not None and len(layers) != n_layers:
            problems.append(f"layers: {len(layers)} entries, expected one per layer (n_layers={n_layers})")
        for i, entry in enumerate(layers):
            path = f"layers[{i}]"
            layer = _get(entry, "layer")
            if _JSON_TYPES["integer"](layer):
                if n_layers is not None and not 0 <= layer < n_layers:
                    problems.append(
                        f"{path}.layer: layer {layer} out of range for n_layers={n_layers} (valid 0..{n_layers - 1})"
                    )
                elif layer != i:
                    problems.append(f"{path}.layer: expected {i} (layers must list every layer in order), got {layer}")
            _check_units(_get(entry, "mlp"), f"{path}.mlp", "neuron", "neurons", dims["d_mlp"], "d_mlp", problems)
            _check_units(
                _get(entry, "attention"), f"{path}.attention", "head", "heads", dims["n_heads"], "n_heads", problems
            )

    alloc = obj.get("allocation")
    budget = obj.get("budget")
    if isinstance(alloc, dict) and isinstance(budget, dict) and n_layers is not None:
        try:
            known = {k: v for k, v in alloc.items() if k in AllocationConfig.__dataclass_fields__}
            expected = AllocationConfig.from_dict(known).budget(n_layers)
        except (TypeError, ValueError):
            expected = None  # already reported by the schema walk
        if expected is not None:
            for key in ("total", "neurons", "heads"):
                if key in budget and budget[key] != expected[key]:
                    problems.append(
                        f"budget.{key}: {budget[key]!r} but allocation gives {expected[key]} for n_layers={n_layers}"
                    )

    if version == 1 and "faithfulness" in obj:
        problems.append("faithfulness: not part of schema_version 1 (written by schema_version 2)")

    fname = obj.get("delta_mu_file")
    if (
        isinstance(fname, str)
        and fname
        and (Path(fname).name != fname or "/" in fname or "\\" in fname or fname in (".", ".."))
    ):
        problems.append(f"delta_mu_file: must be a bare file name in the same directory, got {fname!r}")
    return problems
