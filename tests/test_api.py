"""The public API: every exported name resolves, ``import circuits`` stays light."""

from __future__ import annotations

import subprocess
import sys

import circuits


def test_every_exported_name_resolves():
    for name in circuits.__all__:
        assert getattr(circuits, name) is not None, name
    assert set(circuits.__all__) <= set(dir(circuits))


def test_import_circuits_loads_no_torch():
    code = "import sys, circuits; print('torch' in sys.modules, 'transformer_lens' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "False"]


def test_every_user_error_is_an_input_error():
    from circuits.circuit import CircuitFormatError
    from circuits.core.emotions import UnknownEmotionError
    from circuits.core.model import ModelLoadError
    from circuits.core.sev import SEVFormatError
    from circuits.discovery.store import StoreMismatchError
    from circuits.judges import JudgeSpecError, LLMJudgeError
    from circuits.runs.discover import DiscoverInputError
    from circuits.va import VAFormatError, VAInputError

    for cls in (
        CircuitFormatError,
        UnknownEmotionError,
        ModelLoadError,
        SEVFormatError,
        JudgeSpecError,
        LLMJudgeError,
        DiscoverInputError,
        VAFormatError,
        VAInputError,
    ):
        assert issubclass(cls, circuits.InputError), cls
    assert issubclass(StoreMismatchError, circuits.ModelMismatch)


def test_type_checking_block_lists_every_exported_name():
    """The ``if TYPE_CHECKING:`` imports of ``circuits/__init__.py`` (what IDEs see) name exactly the
    lazy exports, each from the module ``_EXPORTS`` loads it from."""
    import ast
    from pathlib import Path

    tree = ast.parse(Path(circuits.__file__).read_text())
    block = next(n for n in tree.body if isinstance(n, ast.If) and getattr(n.test, "id", None) == "TYPE_CHECKING")
    seen = {a.name: imp.module for imp in block.body for a in imp.names}
    assert seen == circuits._EXPORTS
