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

The stage packages (``circuits.core``, ``judges``, ``discovery``, ``circuit``, ``steer``, ``va``,
``figures``, ``interop``, ``toy``, ``runs``; lowest first, each importing only those before it)
hold the rest, and ``circuits.cli`` is the command line; the README's architecture section maps them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.3.0"

_EXPORTS: dict[str, str] = {
    "EMOTIONS": "circuits.core.emotions",
    "LABELS": "circuits.core.emotions",
    "NEUTRAL": "circuits.core.emotions",
    "VALENCES": "circuits.core.emotions",
    "UnknownEmotionError": "circuits.core.emotions",
    "ArchInfo": "circuits.core.model",
    "HookNames": "circuits.core.model",
    "ModelHandle": "circuits.core.model",
    "ModelLoadError": "circuits.core.model",
    "load_model": "circuits.core.model",
    "PromptSettings": "circuits.core.sev",
    "SEVDataset": "circuits.core.sev",
    "SEVFormatError": "circuits.core.sev",
    "SEVItem": "circuits.core.sev",
    "load_sev": "circuits.core.sev",
    "Intervention": "circuits.core.hooks",
    "Read": "circuits.core.hooks",
    "make_hooks": "circuits.core.hooks",
    "run_forward": "circuits.core.hooks",
    "InputError": "circuits.core.artifacts",
    "ModelMismatch": "circuits.core.artifacts",
    "generate": "circuits.core.generate",
    "GenerationSettings": "circuits.core.generate",
    "discover": "circuits.runs.discover",
    "DiscoverConfig": "circuits.runs.discover",
    "build_store": "circuits.discovery.store",
    "StoreConfig": "circuits.discovery.store",
    "emotion_directions": "circuits.discovery.directions",
    "Circuit": "circuits.circuit",
    "load_circuits": "circuits.circuit",
    "assemble_circuit": "circuits.circuit",
    "circuit_modulation": "circuits.steer",
    "direction_steering": "circuits.steer",
    "emotion_vector_steering": "circuits.steer",
    "evaluate_methods": "circuits.steer",
    "EvalConfig": "circuits.steer",
    "run_evaluation": "circuits.runs.evaluate",
    "run_va": "circuits.runs.valence_arousal",
    "VAConfig": "circuits.runs.valence_arousal",
    "make_judge": "circuits.judges",
}

if TYPE_CHECKING:  # what IDEs and type checkers see; at run time each name loads lazily (__getattr__)
    from circuits.circuit import Circuit, assemble_circuit, load_circuits
    from circuits.core.artifacts import InputError, ModelMismatch
    from circuits.core.emotions import EMOTIONS, LABELS, NEUTRAL, VALENCES, UnknownEmotionError
    from circuits.core.generate import GenerationSettings, generate
    from circuits.core.hooks import Intervention, Read, make_hooks, run_forward
    from circuits.core.model import ArchInfo, HookNames, ModelHandle, ModelLoadError, load_model
    from circuits.core.sev import PromptSettings, SEVDataset, SEVFormatError, SEVItem, load_sev
    from circuits.discovery.directions import emotion_directions
    from circuits.discovery.store import StoreConfig, build_store
    from circuits.judges import make_judge
    from circuits.runs.discover import DiscoverConfig, discover
    from circuits.runs.evaluate import run_evaluation
    from circuits.runs.valence_arousal import VAConfig, run_va
    from circuits.steer import (
        EvalConfig,
        circuit_modulation,
        direction_steering,
        emotion_vector_steering,
        evaluate_methods,
    )

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
