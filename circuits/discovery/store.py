"""The activation store: last-prompt-token activations of SEV prompts, on disk, resumable.

One row per prompt: every (scenario, valence, emotion) with the emotion system prompt, and every
(scenario, valence) with the neutral system prompt. For each row and layer the store keeps, at the
last prompt token (the position that generates the first reply token):

=============  ===============================  =============================================
name           shape per row                    what
=============  ===============================  =============================================
resid_mid      [n_layers, d_model]              residual after attention (read point "attn")
resid_post     [n_layers, d_model]              residual after the block (read point "mlp")
z              [n_layers, n_heads, d_head]      per-head attention values (o_proj input)
mlp_post       [n_layers, d_mlp]                MLP post-activations (W_out input)
final_scale    [1]                              final norm's RMS scale (final state = resid/scale)
attn_post_scale, mlp_post_scale [n_layers]      post-norm scales (Gemma2 only)
attn_mean      [n_layers, d_model]              attention output averaged over the prompt's tokens
                                                (not the last token only): the Emotion Vectors'
                                                input, read in the same pass
=============  ===============================  =============================================

Stores from before ``attn_mean`` existed (``meta.json`` without ``"tensors"``) load and resume without it;
the Emotion Vectors of such a store take a second pass over its prompts.

On disk: ``meta.json`` (model identity and fingerprint, dataset path and sha256, prompt settings,
store config, the rows, the finished shards) and ``shard_NNNNN.safetensors`` files. Every file is
written atomically; a run that stops midway resumes at the first missing shard; a store built for
another model, dataset, prompt or config is refused with an error that names what differs.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from jaxtyping import Float
from safetensors.torch import save_file
from tqdm.auto import tqdm

from circuits.core.artifacts import InputError, ModelMismatch, write_atomic, write_json_atomic
from circuits.core.emotions import EMOTIONS, check_emotions
from circuits.core.hooks import Intervention, Read, run_forward
from circuits.core.model import ModelHandle
from circuits.core.readers import as_path, check_tensor, read_json, read_safetensors
from circuits.core.sev import PromptSettings, SEVDataset

STORE_VERSION = 1
READ_POINTS = ("attn", "mlp")
"""The two residual read points per layer: after attention (resid_mid) and after the block (resid_post)."""


class StoreMismatchError(ModelMismatch):
    """An existing store was built for another model, dataset, prompt setting or config (a
    :class:`~circuits.core.artifacts.ModelMismatch`; the message names the differing part)."""

    def __init__(self, message: str) -> None:
        super().__init__(None, message)


@dataclass(frozen=True)
class StoreConfig:
    """What goes into a store. ``limit``: number of SEV scenarios (deterministic subset)."""

    emotions: tuple[str, ...] = EMOTIONS
    neutral: bool = True
    limit: int | None = None
    batch_size: int = 16
    shard_rows: int = 512
    dtype: str = "float32"
    """Storage dtype (``float32``, ``bfloat16`` or ``float16``); analyses upcast to float32."""

    def __post_init__(self) -> None:
        check_emotions(self.emotions, EMOTIONS)
        if self.dtype not in ("float32", "bfloat16", "float16"):
            raise ValueError(f"StoreConfig.dtype: expected float32, bfloat16 or float16, got {self.dtype!r}")
        if self.batch_size < 1 or self.shard_rows < 1:
            raise ValueError("StoreConfig.batch_size and shard_rows must be >= 1")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["emotions"] = list(self.emotions)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "StoreConfig":
        d = {k: d[k] for k in cls.__dataclass_fields__ if k in d}
        if "emotions" in d:
            d["emotions"] = tuple(d["emotions"])
        return cls(**d)


@dataclass
class StoreRow:
    """One prompt of the store. ``emotion`` is None for a neutral-prompt row. ``accepted`` is False
    for emotion rows whose elicited reply was judged as another emotion (elicitation only)."""

    kind: str
    skeleton_id: str
    theme: str
    valence: str
    emotion: str | None
    user: str = ""
    n_tokens: int = 0
    accepted: bool = True
    reply: str | None = None
    judged: str | None = None

    @property
    def group(self) -> tuple[str, str]:
        return (self.skeleton_id, self.valence)


def plan_rows(dataset: SEVDataset, config: StoreConfig) -> list[StoreRow]:
    """Rows in store order: emotion rows (scenario-major, then valence, then emotion), then neutral."""
    rows = [
        StoreRow("emotion", it.skeleton_id, it.theme, it.valence, it.emotion, it.user_text)
        for it in dataset.items(emotions=config.emotions)
    ]
    if config.neutral:
        rows += [
            StoreRow("neutral", it.skeleton_id, it.theme, it.valence, None, it.user_text)
            for it in dataset.items(neutral=True)
        ]
    return rows


def _identity(model: ModelHandle, dataset: SEVDataset, settings: PromptSettings, config: StoreConfig) -> dict:
    return {
        "model": model.describe(),
        "dataset": {
            "path": str(dataset.path) if dataset.path else None,
            "sha256": dataset.sha256,
            "n_scenarios": len(dataset),
        },
        "prompts": settings.to_dict(),
        "config": config.to_dict(),
    }


def _differences(a: Any, b: Any) -> str:
    """``key: store X, requested Y`` for every differing key of two dicts, else the two values."""
    if isinstance(a, dict) and isinstance(b, dict):
        keys = [k for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
        return "; ".join(f"{k}: store {a.get(k)!r}, requested {b.get(k)!r}" for k in keys)
    return f"store: {a}; requested: {b}"


def _compare(old: dict, new: dict, where: Path) -> None:
    """Raise :class:`StoreMismatchError` naming the first differing part of the identity (model
    fingerprint, store config, prompt settings, dataset) and, for dicts, every differing field."""
    checks = [
        ("model fingerprint", old["model"]["fingerprint"], new["model"]["fingerprint"], None),
        (
            "store config",
            {k: v for k, v in old["config"].items() if k != "batch_size"},
            {k: v for k, v in new["config"].items() if k != "batch_size"},
            None,
        ),
        ("prompt settings", old["prompts"], new["prompts"], None),
        (
            "dataset sha256",
            old["dataset"]["sha256"],
            new["dataset"]["sha256"],
            _differences(old["dataset"], new["dataset"]),
        ),
    ]
    for what, a, b, detail in checks:
        if a != b:
            raise StoreMismatchError(
                f"{where}: this activation store was built with a different {what} "
                f"({detail or _differences(a, b)}). Use another --out directory, or delete {where} to rebuild it (Python: build_store(..., overwrite=True))."
            )


class ActivationStore:
    """A finished (or partially built) store loaded from disk. Tensors are float32 on CPU.

    ``rows`` lists :class:`StoreRow` in order; ``tensor(name)`` is ``[n_rows, ...]`` (shapes in the
    module docstring); :meth:`index` selects rows.
    """

    def __init__(self, path: Path, meta: dict[str, Any], tensors: dict[str, torch.Tensor]):
        self.path = path
        self.meta = meta
        self.rows = [StoreRow(**r) for r in meta["rows"]]
        self._tensors = tensors

    @property
    def fingerprint(self) -> str:
        return self.meta["model"]["fingerprint"]

    @property
    def n_layers(self) -> int:
        return int(self.meta["model"]["arch"]["n_layers"])

    @property
    def emotions(self) -> tuple[str, ...]:
        return tuple(self.meta["config"]["emotions"])

    @property
    def settings(self) -> PromptSettings:
        return PromptSettings.from_dict(self.meta["prompts"])

    def prompts(self, model: ModelHandle, idx: Sequence[int], neutral: bool = False) -> list[list[int]]:
        """Chat token ids of rows ``idx`` (with the neutral system prompt if ``neutral``)."""
        return row_prompts(model, [self.rows[int(i)] for i in idx], self.settings, neutral)

    def tensor(self, name: str) -> torch.Tensor:
        if name not in self._tensors:
            raise KeyError(f"{self.path}: no tensor {name!r} in the store (has {sorted(self._tensors)})")
        return self._tensors[name]

    def resid(self, point: str) -> Float[torch.Tensor, "rows n_layers d_model"]:
        """Residual at read point ``"attn"`` (resid_mid) or ``"mlp"`` (resid_post)."""
        if point not in READ_POINTS:
            raise ValueError(f"read point must be one of {READ_POINTS}, got {point!r}")
        return self.tensor("resid_mid" if point == "attn" else "resid_post")

    def index(
        self,
        kind: str = "emotion",
        emotion: str | None = None,
        accepted_only: bool = True,
        rows: Sequence[int] | None = None,
    ) -> torch.Tensor:
        """Row indices of ``kind`` ("emotion" | "neutral"), optionally one emotion, accepted only."""
        if emotion is not None:
            check_emotions([emotion], self.emotions)
        pool = range(len(self.rows)) if rows is None else rows
        sel = [
            i
            for i in pool
            if self.rows[i].kind == kind
            and (emotion is None or self.rows[i].emotion == emotion)
            and (self.rows[i].accepted or not accepted_only)
        ]
        return torch.tensor(sel, dtype=torch.long)

    def final_state(self, idx: torch.Tensor | None = None) -> Float[torch.Tensor, "rows d_model"]:
        """Final last-token state after the final norm (without its folded weight): resid / scale."""
        post = self.tensor("resid_post")[:, -1]
        scale = self.tensor("final_scale")
        out = post / scale
        return out if idx is None else out[idx]

    @classmethod
    def load(cls, path: str | Path, model: ModelHandle | None = None) -> "ActivationStore":
        """Load a store directory; with ``model``, refuse a store built for another model.

        A missing ``meta.json``, a meta file that does not describe a store (every field checked),
        shards that are missing, truncated, mis-shaped, or hold NaN / inf raise :class:`InputError`
        naming the file."""
        path = as_path(path, "ActivationStore.load: path")
        meta_path = path / "meta.json"
        if not meta_path.is_file():
            raise InputError(f"{path}: not an activation store (no meta.json)")
        meta = read_store_meta(meta_path)
        if meta["version"] != STORE_VERSION:
            raise StoreMismatchError(f"{meta_path}: store version {meta.get('version')!r}, expected {STORE_VERSION}")
        if model is not None and meta["model"]["fingerprint"] != model.fingerprint:
            raise StoreMismatchError(
                f"{path}: store built for model {meta['model']['name']!r} (fingerprint "
                f"{meta['model']['fingerprint']}), not for {model.name!r} ({model.fingerprint})"
            )
        return cls(path, meta, _read_shards(path, meta))

    @property
    def complete(self) -> bool:
        return bool(self.meta.get("complete"))


LEGACY_TENSORS = ("resid_mid", "resid_post", "z", "mlp_post", "final_scale", "attn_post_scale", "mlp_post_scale")
"""The tensors a store written before ``meta.json`` listed its tensors can hold (Gemma2's scales only
for Gemma2): such a store resumes with these, so that its shards stay alike."""


def store_reads(model: ModelHandle, names: Sequence[str] | None = None) -> dict[str, list[Read]]:
    """Store tensor name -> the reads (one per layer; ``final_scale``: one) it is captured from, all at
    the last prompt token but ``attn_mean`` (the mean over the prompt's tokens). ``names``: only these
    (default every tensor the model has)."""
    n = model.arch.n_layers
    reads = {name: [Read(name, L) for L in range(n)] for name in ("resid_mid", "resid_post", "z", "mlp_post")}
    reads["final_scale"] = [Read("final_scale")]
    if model.arch.post_norms:
        reads["attn_post_scale"] = [Read("attn_post_scale", L) for L in range(n)]
        reads["mlp_post_scale"] = [Read("mlp_post_scale", L) for L in range(n)]
    reads["attn_mean"] = [Read("attn_out", L, positions="mean") for L in range(n)]
    return reads if names is None else {k: v for k, v in reads.items() if k in names}


@torch.no_grad()
def last_token_activations(
    model: ModelHandle,
    prompts: Sequence[Sequence[int]],
    interventions: Sequence[Intervention] = (),
    names: Sequence[str] | None = None,
) -> dict[str, torch.Tensor]:
    """One left-padded forward pass (``interventions`` applied); returns every store tensor (``names``:
    these) at the last prompt token (``attn_mean``: averaged over the prompt's tokens), on CPU, float32:
    ``{name: [batch, n_layers, ...]}`` (``final_scale``: ``[batch, 1]``). Only the last position's
    logits are computed (``logits_to_keep=1``)."""
    ids, mask = model.pad_left(prompts)
    reads = store_reads(model, names)
    got = run_forward(model, ids, mask, interventions, [r for rs in reads.values() for r in rs])
    out = {}
    for key, rs in reads.items():
        acts = [got[r] for r in rs]
        out[key] = (
            acts[0].reshape(len(prompts), -1)
            if key == "final_scale"
            else torch.stack([a.reshape(len(prompts), *a.shape[1:]) for a in acts], dim=1)
        )
        if key.endswith("_post_scale"):
            out[key] = out[key].reshape(len(prompts), -1)
    return out


def row_prompts(
    model: ModelHandle, rows: Sequence[StoreRow], settings: PromptSettings, neutral: bool = False
) -> list[list[int]]:
    """Chat token ids for each row: its emotion's chat (instruction placed as ``settings`` says; the
    neutral chat for neutral rows, or for every row when ``neutral``) around the SEV user turn."""
    return [model.chat_ids(*settings.chat(None if neutral else r.emotion, r.user)) for r in rows]


def elicit(
    model: ModelHandle,
    rows: list[StoreRow],
    settings: PromptSettings,
    *,
    max_new_tokens: int = 100,
    judge: Callable[[list[str]], list[Any]] | None = None,
    progress: bool = True,
    fluency: Any = "default",
) -> None:
    """The paper's elicitation step, in place: generate greedily with each emotion row's prompt, judge
    the reply, and mark rows whose reply is not judged as the prompted emotion, or is broken (the
    fluency check's verdict ``broken``), as not accepted.

    ``judge`` is any judge :func:`circuits.judges.base.judge_replies` accepts (a label judge: texts ->
    verdicts with ``.label``, or a binary match judge such as :class:`~circuits.judges.base.LLMJudge`);
    each emotion row gets ``reply``, ``judged`` and ``accepted`` set. Neutral rows are left as they are.
    ``fluency``: the fluency check (as in :func:`circuits.judges.base.judge_replies`; None: none)."""
    from circuits.core.generate import GenerationSettings, generate
    from circuits.judges.base import default_judge_instance, judge_replies
    from circuits.judges.fluency import resolve_fluency

    judge = judge or default_judge_instance(model.name)
    todo = [r for r in rows if r.kind == "emotion"]
    replies = generate(
        model,
        row_prompts(model, todo, settings),
        GenerationSettings(max_new_tokens=max_new_tokens),
        progress=progress,
        desc="elicit",
    )
    judged = judge_replies(
        judge,
        replies,
        [r.emotion for r in todo],
        instructions=[settings.instructions(r.emotion, r.user) for r in todo],
        fluency=resolve_fluency(fluency, model.name),
    )
    for row, reply, verdict, hit in zip(todo, replies, judged.verdicts, judged.hits):
        row.reply, row.judged, row.accepted = reply, verdict, hit


def build_store(
    model: ModelHandle,
    dataset: SEVDataset,
    out_dir: str | Path,
    config: StoreConfig | None = None,
    settings: PromptSettings | None = None,
    *,
    elicitation: bool = False,
    elicit_max_new_tokens: int = 100,
    judge: Callable[[list[str]], list[Any]] | None = None,
    overwrite: bool = False,
    progress: bool = True,
    fluency: Any = "default",
) -> ActivationStore:
    """Build (or resume, or reuse) the activation store in ``out_dir`` and return it loaded.

    A complete store with the same identity is reused as is; a partial one resumes at its first
    missing shard; one with another identity raises :class:`StoreMismatchError` unless ``overwrite``
    (the existing files are left untouched). With ``elicitation`` the rows are first elicited and
    judged (:func:`elicit`; ``judge``: any judge :func:`circuits.judges.base.judge_replies` accepts,
    default the model's recommended judge; ``fluency``: the fluency check, whose broken replies are
    rejected) and the verdicts are kept in ``meta.json``; a reused or resumed store keeps its verdicts.
    """
    config = config or StoreConfig()
    settings = settings or PromptSettings()
    settings.check_sev_shaped("build_store")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    dataset = dataset.subset(config.limit)
    ident = _identity(model, dataset, settings, config)
    meta_path = out / "meta.json"
    meta: dict[str, Any] | None = None
    if meta_path.exists():
        old = read_store_meta(meta_path)
        if overwrite:
            for shard in old.get("shards", []):
                (out / shard["file"]).unlink(missing_ok=True)
        else:
            if old.get("version") != STORE_VERSION:
                raise StoreMismatchError(f"{meta_path}: store version {old.get('version')!r}, expected {STORE_VERSION}")
            _compare(old, ident, out)
            if old.get("elicitation", False) != elicitation:
                raise StoreMismatchError(
                    f"{out}: store was built with elicitation={old.get('elicitation')}, requested {elicitation}"
                )
            meta = old
    if meta is None:
        rows = plan_rows(dataset, config)
        if elicitation:
            elicit(
                model,
                rows,
                settings,
                max_new_tokens=elicit_max_new_tokens,
                judge=judge,
                progress=progress,
                fluency=fluency,
            )
        meta = {
            "version": STORE_VERSION,
            **ident,
            "elicitation": elicitation,
            "rows": [asdict(r) for r in rows],
            "tensors": sorted(store_reads(model)),
            "shards": [],
            "complete": False,
        }
        write_json_atomic(meta_path, meta)
    if meta["complete"]:
        return ActivationStore.load(out, model)

    rows = [StoreRow(**r) for r in meta["rows"]]
    prompts = row_prompts(model, rows, settings)
    dtype = getattr(torch, config.dtype)
    names = meta.get("tensors", LEGACY_TENSORS)
    done = {s["start"] for s in meta["shards"]}
    bar = tqdm(total=len(rows), desc="activation store", disable=not progress)
    bar.update(sum(s["stop"] - s["start"] for s in meta["shards"]))
    for start in range(0, len(rows), config.shard_rows):
        if start in done:
            continue
        stop = min(start + config.shard_rows, len(rows))
        chunk: dict[str, list[torch.Tensor]] = {}
        order = sorted(range(start, stop), key=lambda i: len(prompts[i]))  # little padding
        for b in range(0, len(order), config.batch_size):
            idx = order[b : b + config.batch_size]
            acts = last_token_activations(model, [prompts[i] for i in idx], names=names)
            for k, v in acts.items():
                chunk.setdefault(k, []).append(v)
            bar.update(len(idx))
        inverse = torch.empty(len(order), dtype=torch.long)
        inverse[torch.tensor(order) - start] = torch.arange(len(order))
        tensors = {k: torch.cat(v)[inverse].to(dtype).contiguous() for k, v in chunk.items()}
        for i in range(start, stop):
            meta["rows"][i]["n_tokens"] = len(prompts[i])
        name = f"shard_{start:06d}.safetensors"
        write_atomic(out / name, lambda p, t=tensors: save_file(t, str(p)))
        meta["shards"].append({"file": name, "start": start, "stop": stop})
        meta["shards"].sort(key=lambda s: s["start"])
        write_json_atomic(meta_path, meta)
    bar.close()
    meta["complete"] = True
    write_json_atomic(meta_path, meta)
    return ActivationStore.load(out, model)


_ROW_TYPES: dict[str, tuple[type, ...]] = {
    "kind": (str,),
    "skeleton_id": (str,),
    "theme": (str,),
    "valence": (str,),
    "emotion": (str, type(None)),
    "user": (str,),
    "n_tokens": (int,),
    "accepted": (bool,),
    "reply": (str, type(None)),
    "judged": (str, type(None)),
}
_ROW_REQUIRED = ("kind", "skeleton_id", "theme", "valence", "emotion")


def read_store_meta(meta_path: Path) -> dict[str, Any]:
    """A store's ``meta.json``, read through the hardened reader and checked field by field (version,
    model identity, rows, shards): a problem raises :class:`InputError` naming the file and field. The
    prompt settings come back complete: a field the store was written without (``placement`` before
    placements, ``prompt_family`` before prompt families) has its default, which is what built it."""
    meta = read_json(meta_path, what="store meta file")

    def bad(field: str, expected: str) -> InputError:
        return InputError(f"{meta_path}: field {field!r}: expected {expected}")

    if not isinstance(meta.get("version"), int) or isinstance(meta.get("version"), bool):
        raise bad("version", f"the store version {STORE_VERSION}")
    model = meta.get("model")
    if not isinstance(model, dict) or not isinstance(model.get("fingerprint"), str):
        raise bad("model", "an object with the model's name and fingerprint")
    if not isinstance(model.get("name"), str):
        raise bad("model.name", "a string")
    n_layers = model.get("arch", {}).get("n_layers") if isinstance(model.get("arch"), dict) else None
    if not isinstance(n_layers, int) or isinstance(n_layers, bool) or n_layers < 1:
        raise bad("model.arch.n_layers", "a whole number >= 1")
    rows = meta.get("rows")
    if not isinstance(rows, list):
        raise bad("rows", "a list of store rows")
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            raise bad(f"rows[{i}]", "an object")
        for key in _ROW_REQUIRED:
            if key not in row:
                raise bad(f"rows[{i}].{key}", "a value (the field is missing)")
        for key, value in row.items():
            types = _ROW_TYPES.get(key)
            if types is None:
                raise bad(f"rows[{i}].{key}", f"one of the row fields {', '.join(_ROW_TYPES)}")
            if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
                raise bad(f"rows[{i}].{key}", " or ".join("null" if t is type(None) else t.__name__ for t in types))
        if row["kind"] not in ("emotion", "neutral"):
            raise bad(f"rows[{i}].kind", "'emotion' or 'neutral'")
    shards = meta.get("shards")
    if not isinstance(shards, list):
        raise bad("shards", "a list of shards")
    for i, shard in enumerate(shards):
        ok = isinstance(shard, dict) and isinstance(shard.get("file"), str)
        ok = ok and Path(shard["file"]).name == shard["file"] and shard["file"].endswith(".safetensors")
        bounds = [shard.get(k) if isinstance(shard, dict) else None for k in ("start", "stop")]
        ok = ok and all(isinstance(b, int) and not isinstance(b, bool) for b in bounds)
        if not ok or not 0 <= bounds[0] < bounds[1] <= len(rows):
            raise bad(f"shards[{i}]", f"an object with a file name and 0 <= start < stop <= {len(rows)}")
    if not isinstance(meta.get("complete"), bool):
        raise bad("complete", "true or false")
    if isinstance(meta.get("prompts"), dict):  # settings saved before a field existed read with its default
        try:
            meta["prompts"] = PromptSettings.from_dict(meta["prompts"]).to_dict()
        except (InputError, TypeError) as err:
            raise InputError(f"{meta_path}: field 'prompts': {err}") from None
    known = set(LEGACY_TENSORS) | {"attn_mean"}
    names = meta.get("tensors", list(LEGACY_TENSORS))
    if not isinstance(names, list) or not names or not all(isinstance(n, str) and n in known for n in names):
        raise bad("tensors", f"a list of store tensor names among {', '.join(sorted(known))}")
    return meta


def _read_shards(path: Path, meta: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The store's tensors, concatenated over its shards (each checked: readable, finite, one row per
    store row it covers, the same tensors and trailing shapes in every shard)."""
    parts: dict[str, list[torch.Tensor]] = {}
    trailing: dict[str, tuple[int, ...]] = {}
    expected_rows = 0
    for shard in sorted(meta["shards"], key=lambda s: s["start"]):
        f = path / shard["file"]
        if shard["start"] != expected_rows:
            raise InputError(
                f"{path / 'meta.json'}: shard {shard['file']} starts at row {shard['start']}, expected {expected_rows}"
            )
        expected_rows = shard["stop"]
        tensors, _ = read_safetensors(f, what="store shard")
        if parts and set(tensors) != set(parts):
            raise InputError(f"{f}: holds the tensors {sorted(tensors)}, the other shards {sorted(parts)}")
        for k, v in tensors.items():
            shape = (shard["stop"] - shard["start"], *trailing.get(k, v.shape[1:]))
            check_tensor(v, f"{f}: tensor {k!r}", shape=shape, finite=False)
            if not v.is_floating_point():
                raise InputError(f"{f}: tensor {k!r}: expected a floating dtype, got {v.dtype}")
            trailing[k] = tuple(v.shape[1:])
            parts.setdefault(k, []).append(v.float())
    if meta["complete"] and expected_rows != len(meta["rows"]):
        raise InputError(
            f"{path / 'meta.json'}: the shards hold {expected_rows} rows, the store has {len(meta['rows'])}"
        )
    return {k: torch.cat(v) for k, v in parts.items()}
