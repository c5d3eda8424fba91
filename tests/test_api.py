"""The public API: every exported name resolves, ``import circuits`` stays light, old paths alias."""

from __future__ import annotations

import subprocess
import sys
import warnings

import circuits


def test_every_exported_name_resolves():
    for name in circuits.__all__:
        assert getattr(circuits, name) is not None, name
    assert set(circuits.__all__) <= set(dir(circuits))


def test_import_circuits_loads_no_torch():
    code = "import sys, circuits; print('torch' in sys.modules, 'transformer_lens' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "False"]


def test_old_import_paths_alias_the_new_modules():
    import importlib

    from circuits._compat import OLD_PATHS

    for old, new in OLD_PATHS.items():
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            sys.modules.pop(old, None)
            mod = importlib.import_module(old)
        assert mod is importlib.import_module(new), old
        assert mod.__spec__.name == new
        assert any(issubclass(w.category, DeprecationWarning) and new in str(w.message) for w in caught), old


def test_every_user_error_is_an_input_error():
    from circuits.circuit import CircuitFormatError, CircuitModelMismatch
    from circuits.core.emotions import UnknownEmotionError
    from circuits.core.model import ModelLoadError
    from circuits.core.sev import SEVFormatError
    from circuits.discovery.store import StoreMismatchError
    from circuits.judges import JudgeSpecError, LLMJudgeError
    from circuits.runs.discover import DiscoverInputError
    from circuits.steer import FingerprintMismatch
    from circuits.va import VAFormatError, VAInputError

    for cls in (CircuitFormatError, UnknownEmotionError, ModelLoadError, SEVFormatError, JudgeSpecError,
                LLMJudgeError, DiscoverInputError, VAFormatError, VAInputError):
        assert issubclass(cls, circuits.InputError), cls
    assert CircuitModelMismatch is FingerprintMismatch is circuits.ModelMismatch
    assert issubclass(StoreMismatchError, circuits.ModelMismatch)
