"""Steering: the methods (circuit modulation, direction steering, Emotion Vectors), each a list of
``Intervention``s, and their evaluation on held-out items (accuracy, perplexity, distinct-n)."""

from circuits.steer.methods import (
    STEERING_POSITIONS,
    circuit_modulation,
    default_direction_layers,
    direction_steering,
    emotion_vector_steering,
    emotion_vectors,
)
from circuits.steer.metrics import METHODS, EvalConfig, evaluate_methods, method_table

__all__ = [
    "METHODS",
    "EvalConfig",
    "evaluate_methods",
    "method_table",
    "STEERING_POSITIONS",
    "circuit_modulation",
    "default_direction_layers",
    "direction_steering",
    "emotion_vector_steering",
    "emotion_vectors",
]
