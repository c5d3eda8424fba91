"""Running a GGUF model in llama.cpp (llama-cpp-python, an optional extra) with and without a control vector.

``pip install 'emotion-circuits[llamacpp]'`` compiles llama.cpp from the llama-cpp-python sdist (about
10-15 minutes on 2 cores). :class:`LlamaCpp` runs greedy chat replies and last-token logits on the
token ids the workbench builds (so both engines read the same prompt), under a
:class:`~circuits.interop.controlvector.ControlVector` applied with ``llama_set_adapter_cvec`` (what
llama.cpp's ``--control-vector`` option does).
"""

from __future__ import annotations

import ctypes
import os
from typing import Sequence

import numpy as np

from circuits.core.readers import check_gguf_magic
from circuits.interop.controlvector import ControlVector


def available() -> bool:
    """Whether llama-cpp-python is installed."""
    try:
        import llama_cpp  # noqa: F401
    except ImportError:
        return False
    return True


class LlamaCpp:
    """A llama.cpp model from a ``.gguf`` file (greedy decoding, fixed seed)."""

    def __init__(self, gguf_path: str | os.PathLike, n_threads: int = 2, n_ctx: int = 1024):
        try:
            import llama_cpp
        except ImportError as err:
            raise ImportError(
                "llama-cpp-python is not installed: pip install 'emotion-circuits[llamacpp]' (it compiles llama.cpp)"
            ) from err
        check_gguf_magic(gguf_path, what="GGUF model file")  # llama.cpp's own error on a bad file is a bare ValueError
        self._lib = llama_cpp
        self.llm = llama_cpp.Llama(
            model_path=str(gguf_path), n_ctx=n_ctx, n_threads=n_threads, verbose=False, seed=0, logits_all=False
        )
        self.n_layers = int(
            self.llm.metadata.get(f"{self.llm.metadata.get('general.architecture')}.block_count", 0)
        ) or int(llama_cpp.llama_model_n_layer(self.llm.model))
        self.n_embd = int(llama_cpp.llama_model_n_embd(self.llm.model))
        self.eos = int(self.llm.token_eos())
        self._cvec: np.ndarray | None = None

    def close(self) -> None:
        """Free llama.cpp's model and context now (not at interpreter exit, when its bindings are gone)."""
        self.llm.close()

    def set_control_vector(self, cv: ControlVector | None, scale: float = 1.0) -> None:
        """Steer every later call with ``scale * cv`` (None: stop steering)."""
        ctx = self.llm.ctx
        if cv is None:
            self._lib.llama_set_adapter_cvec(ctx, None, 0, self.n_embd, 0, 0)
            self._cvec = None
            return
        if cv.d_model != self.n_embd:
            raise ValueError(f"control vector size {cv.d_model} != the model's n_embd {self.n_embd}")
        buf = np.ascontiguousarray(cv.llama_cpp_buffer(self.n_layers, scale), dtype=np.float32)
        self._cvec = buf  # keep it alive while llama.cpp copies it
        rc = self._lib.llama_set_adapter_cvec(
            ctx, buf.ctypes.data_as(ctypes.POINTER(ctypes.c_float)), buf.size, self.n_embd, 1, self.n_layers - 1
        )
        if rc != 0:
            raise RuntimeError(f"llama_set_adapter_cvec returned {rc}")

    def last_logits(self, ids: Sequence[int]) -> np.ndarray:
        """Logits (``[n_vocab]``, float32) at the last of ``ids`` (a fresh context)."""
        self.llm.reset()
        self.llm.eval(list(ids))  # without logits_all the wrapper keeps no scores: read the context's last row
        n_vocab = int(self._lib.llama_vocab_n_tokens(self._lib.llama_model_get_vocab(self.llm.model)))
        return np.ctypeslib.as_array(self.llm._ctx.get_logits(), shape=(n_vocab,)).astype(np.float32)

    def generate(self, ids: Sequence[int], max_new_tokens: int = 48) -> list[int]:
        """Greedy continuation of ``ids`` (token ids), without the end-of-turn token."""
        self.llm.reset()
        out: list[int] = []
        for tok in self.llm.generate(list(ids), temp=0.0, top_k=1, top_p=1.0, repeat_penalty=1.0, reset=True):
            if tok == self.eos or len(out) >= max_new_tokens:
                break
            out.append(int(tok))
        return out

    def replies(self, model, prompts: Sequence[Sequence[int]], max_new_tokens: int = 48) -> list[str]:
        """Greedy replies to workbench prompts, decoded with the workbench model's tokenizer."""
        return [
            model.tokenizer.decode(self.generate(p, max_new_tokens), skip_special_tokens=True).strip() for p in prompts
        ]
