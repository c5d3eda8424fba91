"""Emotion circuits: budget allocation, assembly from scores, the data model with its files, the JSON
schema, the EAP-IG graph export and overlap statistics."""

from circuits.circuit.allocation import AllocationConfig, allocate
from circuits.circuit.assemble import assemble_circuit, overlap
from circuits.circuit.emotion_circuit import Circuit, CircuitFormatError, LayerCircuit, load_circuits, save_circuits
from circuits.circuit.graph import GRAPH_FORMAT, GRAPH_SCHEMA_VERSION, circuit_graph
from circuits.circuit.schema import (
    CIRCUIT_JSON_SCHEMA,
    CIRCUIT_KIND,
    SCHEMA_VERSION,
    SUPPORTED_SCHEMA_VERSIONS,
    validate_circuit_json,
)

__all__ = [
    "AllocationConfig",
    "allocate",
    "assemble_circuit",
    "overlap",
    "Circuit",
    "CircuitFormatError",
    "LayerCircuit",
    "load_circuits",
    "save_circuits",
    "GRAPH_FORMAT",
    "GRAPH_SCHEMA_VERSION",
    "circuit_graph",
    "CIRCUIT_JSON_SCHEMA",
    "CIRCUIT_KIND",
    "SCHEMA_VERSION",
    "SUPPORTED_SCHEMA_VERSIONS",
    "validate_circuit_json",
]
