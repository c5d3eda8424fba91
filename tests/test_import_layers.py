"""The package's shape, checked on the source: layers import only downward
(:data:`circuits.core.layers.LAYERS`), only ``circuits.cli`` parses arguments, and no two library modules
share a file name."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

from circuits.core.layers import LAYERS, layer_of

PACKAGE = Path(__file__).resolve().parents[1] / "circuits"


def _modules() -> dict[str, Path]:
    """Dotted name -> file of every module of the package."""
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _imports(name: str, path: Path) -> list[tuple[int, str]]:
    """(line, imported module) of every import in the file, at any depth (function-level ones too);
    ``from circuits.x import y`` counts as ``circuits.x.y`` when that is a module, else ``circuits.x``."""
    modules = _modules()
    is_package = path.name == "__init__.py"
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against this module's package
                pkg = name.split(".") if is_package else name.split(".")[:-1]
                pkg = pkg[: len(pkg) - node.level + 1]
                base = ".".join(pkg + ([base] if base else []))
            for a in node.names:
                full = f"{base}.{a.name}"
                out.append((node.lineno, full if full in modules else base))
    return list(dict.fromkeys(out))


def test_layers_import_only_downward():
    upward = []
    for name, path in _modules().items():
        here = layer_of(name)
        if here is None:  # circuits/__init__.py and __main__.py may import anything
            continue
        for line, target in _imports(name, path):
            there = layer_of(target)
            if there is not None and LAYERS.index(there) > LAYERS.index(here):
                upward.append(f"{path.relative_to(PACKAGE.parent)}:{line}: {here} imports {target} ({there})")
    assert not upward, "upward imports (layers, lowest first: " + ", ".join(LAYERS) + "):\n" + "\n".join(upward)


def test_only_the_cli_parses_arguments():
    found = []
    for name, path in _modules().items():
        if layer_of(name) == "cli" or layer_of(name) is None:
            continue
        found += [
            f"{path.relative_to(PACKAGE.parent)}:{line}: {target}"
            for line, target in _imports(name, path)
            if target.split(".")[0] == "argparse"
        ]
    assert not found, "argparse outside circuits/cli/:\n" + "\n".join(found)


def test_every_layer_is_a_package():
    for layer in LAYERS:
        assert (PACKAGE / layer / "__init__.py").is_file(), layer
    assert {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()} == set(LAYERS)


def test_no_two_library_modules_share_a_name():
    by_name = defaultdict(list)
    for name, path in _modules().items():
        if layer_of(name) in (None, "cli") or path.name == "__init__.py":
            continue
        by_name[path.name].append(str(path.relative_to(PACKAGE.parent)))
    shared = {k: v for k, v in by_name.items() if len(v) > 1}
    assert not shared, f"module file names used more than once: {shared}"


def test_the_walker_sees_function_level_and_from_imports(tmp_path):
    src = "def f():\n    from circuits.runs import layout\n    import circuits.cli\n"
    path = tmp_path / "m.py"
    path.write_text(src)
    assert [t for _, t in _imports("circuits.core.m", path)] == ["circuits.runs.layout", "circuits.cli"]


def test_loading_the_toy_model_imports_no_higher_layer():
    """``load_model("toy")`` finds the shipped model through core (no ``circuits.toy`` import)."""
    import subprocess
    import sys

    code = (
        "import sys; from circuits.core.model import load_model; load_model('toy'); "
        "print(sorted({m.split('.')[1] for m in sys.modules if m.startswith('circuits.')}))"
    )
    out = (
        subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            env={**__import__("os").environ, "HF_HUB_OFFLINE": "1"},
        )
        .stdout.strip()
        .splitlines()[-1]
    )
    assert out == "['core']"
