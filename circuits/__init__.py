"""emotion-circuits: find and control emotion circuits in LLMs with TransformerLens 4.

The names a notebook needs, loaded lazily (``import circuits`` imports no torch):

- models and data: :func:`load_model`, :func:`load_sev`, :class:`PromptSettings`, ``EMOTIONS``
- edits, reads and generation: :class:`Intervention`, :class:`Read`, :func:`make_hooks`,
  :func:`run_forward`, :func:`generate`, :class:`GenerationSettings`
- discovery: :func:`discover`, :class:`DiscoverConfig`, :func:`build_store`, :func:`emotion_directions`
- circuits: :class:`Circuit`, :func:`load_circuits`, :func:`assemble_circuit`
- steering: :func:`circuit_modulation`, :func:`direction_steering`, :func:`emotion_vector_steering`,
  :func:`evaluate_methods`, :func:`run_evaluation`
- errors: :class:`InputError` (every user error), :class:`ModelMismatch`
- valence-arousal: :func:`run_va`, :class:`VAConfig`; judges: :func:`make_judge`

The stage packages (``circuits.core``, ``discovery``, ``circuit``, ``steer``, ``judges``, ``va``,
``figures``, ``runs``, ``toy``) hold the rest; the README's architecture section maps them.
"""

from __future__ import annotations

import importlib
from typing import Any

from circuits import _compat

_compat.install()

__version__ = "0.2.0"

_EXPORTS: dict[str, str] = {
    "EMOTIONS": "circuits.core.emotions", "LABELS": "circuits.core.emotions", "NEUTRAL": "circuits.core.emotions",
    "VALENCES": "circuits.core.emotions", "UnknownEmotionError": "circuits.core.emotions",
    "ArchInfo": "circuits.core.model", "HookNames": "circuits.core.model", "ModelHandle": "circuits.core.model",
    "ModelLoadError": "circuits.core.model", "load_model": "circuits.core.model",
    "PromptSettings": "circuits.core.sev", "SEVDataset": "circuits.core.sev", "SEVFormatError": "circuits.core.sev",
    "SEVItem": "circuits.core.sev", "load_sev": "circuits.core.sev",
    "Intervention": "circuits.core.hooks", "Read": "circuits.core.hooks", "make_hooks": "circuits.core.hooks",
    "run_forward": "circuits.core.hooks", "InputError": "circuits.core.artifacts",
    "ModelMismatch": "circuits.core.artifacts",
    "generate": "circuits.core.generate", "GenerationSettings": "circuits.core.generate",
    "discover": "circuits.runs.discover", "DiscoverConfig": "circuits.runs.discover",
    "build_store": "circuits.discovery.store", "StoreConfig": "circuits.discovery.store",
    "emotion_directions": "circuits.discovery.directions",
    "Circuit": "circuits.circuit", "load_circuits": "circuits.circuit", "assemble_circuit": "circuits.circuit",
    "circuit_modulation": "circuits.steer", "direction_steering": "circuits.steer",
    "emotion_vector_steering": "circuits.steer", "evaluate_methods": "circuits.steer", "EvalConfig": "circuits.steer",
    "run_evaluation": "circuits.runs.evaluate", "run_va": "circuits.va", "VAConfig": "circuits.va",
    "make_judge": "circuits.judges",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    try:
        module = _EXPORTS[name]
    except KeyError:
        raise AttributeError(f"module 'circuits' has no attribute {name!r}") from None
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
