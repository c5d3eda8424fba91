"""The layers of the package, lowest first: a module may import from its own layer and the layers
before it, never from one after it (``tests/test_import_layers.py`` walks every import, function-level
ones included). The top-level ``circuits/__init__.py`` and ``__main__.py`` stand above them all."""

LAYERS: tuple[str, ...] = (
    "core",
    "judges",
    "discovery",
    "circuit",
    "steer",
    "va",
    "figures",
    "interop",
    "toy",
    "runs",
    "cli",
)
"""Sub-packages of ``circuits``, lowest first."""


def layer_of(module: str) -> str | None:
    """The layer of a dotted module name under ``circuits`` (None: the top level, or outside the package)."""
    parts = module.split(".")
    if parts[0] != "circuits" or len(parts) < 2 or parts[1] not in LAYERS:
        return None
    return parts[1]
