"""Taking results elsewhere: llama.cpp control vectors (GGUF), and running them in llama.cpp."""

from circuits.interop.controlvector import (
    ControlVector,
    ControlVectorError,
    circuit_residual_write,
    from_circuit,
    from_directions,
    from_emotion_vectors,
    from_va_axis,
)

__all__ = [
    "ControlVector",
    "ControlVectorError",
    "circuit_residual_write",
    "from_circuit",
    "from_directions",
    "from_emotion_vectors",
    "from_va_axis",
]
