"""Ablation and enhancement sweeps over the top-k neurons or heads of a layer, against random units.

For emotion e, layer L, unit kind (neurons | heads) and k: intervene on the k highest-scoring units of
that layer at the last prompt token of e's rows (emotion prompt) and measure the mean change of the
emotion score ``s_e`` (final state on ``v_ref_e``). The same for k random units of the layer (several
seeds). Modes:

* ``zero``: set the units to 0;   * ``mean``: set them to their mean over all emotion rows;
* ``scale``: multiply by ``scale_factor``;   * ``add``: add the emotion's Delta-mu on those units
  (the group-centred mean difference of the activation, from the store).

The result is long-tail curves: delta s against k for top and random units.

:func:`generation_effect` measures the same interventions on behaviour: the judged emotion of greedy
generations with the top units of every layer zero-ablated (emotion prompt) or enhanced (Delta-mu
added or scaled; neutral prompt by default), against random units and no intervention.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass
from typing import Any, Callable, NamedTuple, Sequence

import torch
from jaxtyping import Float
from tqdm.auto import tqdm

from circuits.core.emotions import check_emotions
from circuits.core.hooks import Intervention, make_hooks
from circuits.core.model import ModelHandle
from circuits.core.prefix import LastTokenBatches
from circuits.core.sev import PromptSettings
from circuits.discovery.directions import Directions, masked_centred_mean, masked_group_tensor
from circuits.discovery.influence import FINAL_STATE, final_state, reference_directions
from circuits.discovery.store import ActivationStore

MODES = ("zero", "mean", "scale", "add")


@dataclass(frozen=True)
class SweepConfig:
    ks: tuple[int, ...] = (1, 2, 4, 8, 16)
    modes: tuple[str, ...] = ("zero", "add")
    seeds: int = 3
    scale_factor: float = 2.0
    layers: tuple[int, ...] | None = None
    batch_size: int = 64

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def delta_mu(store: ActivationStore, name: str, emotions: Sequence[str]) -> torch.Tensor:
    """Group-centred mean difference of a store tensor per emotion: ``[n_emotions, *shape]``
    (``name`` = ``mlp_post`` -> ``[E, L, d_mlp]``; ``z`` -> ``[E, L, H, d_head]``)."""
    h, mask, _ = masked_group_tensor(store, name, emotions)
    return masked_centred_mean(h, mask)


def emotion_mean(store: ActivationStore, name: str) -> torch.Tensor:
    """Mean of a store tensor over every (accepted) emotion row, the emotion-agnostic value that mean
    ablation sets: ``mlp_post`` -> ``[L, d_mlp]``, ``z`` -> ``[L, H, d_head]``."""
    return store.tensor(name)[store.index("emotion")].float().mean(0)


class _LastTokenBatches(LastTokenBatches):
    """:class:`~circuits.core.prefix.LastTokenBatches` scoring the final state on a direction."""

    def final_scores(
        self, v: Float[torch.Tensor, " d_model"], interventions: Sequence[Intervention] = ()
    ) -> Float[torch.Tensor, " rows"]:
        """``<final state, v>`` at each prompt's last position with ``interventions`` applied."""
        return torch.cat([final_state(got) @ v.float() for got in self.run(interventions, FINAL_STATE)])


class _StackedLastTokenBatches(LastTokenBatches):
    """Every batch of ``prompts`` stacked ``copies`` times as rows of one batch (copy c of a batch of n
    prompts is rows ``c*n .. (c+1)*n - 1``), so ``copies`` different edits run in one last-token pass."""

    def __init__(self, model: ModelHandle, prompts: Sequence[Sequence[int]], batch_size: int, copies: int):
        stacked = [
            p for s in range(0, len(prompts), batch_size) for _ in range(copies) for p in prompts[s : s + batch_size]
        ]
        super().__init__(model, stacked, batch_size * copies)
        self.copies = copies

    def final_scores(
        self, v: Float[torch.Tensor, " d_model"], interventions: Sequence[Intervention] = ()
    ) -> Float[torch.Tensor, "copies rows"]:
        """``<final state, v>`` at each prompt's last position, copy c edited by ``interventions[c]``
        (no edit: every copy unedited): ``[copies, prompts]``."""
        P = self.copies

        def hooks(m: int) -> list:
            n = m // P
            return make_hooks(
                self.model, interventions, rows=[range(c * n, (c + 1) * n) for c in range(len(interventions))]
            )

        got = [
            final_state(g) @ v.float()
            for g in self.each(reads=FINAL_STATE, extra_hooks=hooks if interventions else None)
        ]
        return torch.cat([g.reshape(P, -1) for g in got], dim=1)


def _pick_intervention(
    kind: str,
    layer: int,
    mode: str,
    units: list[int],
    e: int,
    cfg: "SweepConfig",
    mean_act: torch.Tensor,
    dmu: torch.Tensor,
) -> Intervention:
    """The sweep's edit of ``units`` of ``layer`` in ``mode`` at the last position (``e``: the emotion's
    index, for Delta-mu)."""
    if mode == "zero":
        return Intervention(kind, layer, "set", tuple(units), positions="last")
    if mode == "mean":
        return Intervention(kind, layer, "set", tuple(units), vector=mean_act[layer, units], positions="last")
    if mode == "scale":
        return Intervention(kind, layer, "scale", tuple(units), factor=cfg.scale_factor, positions="last")
    return Intervention(kind, layer, "add", tuple(units), vector=dmu[e, layer, units], positions="last")


def sweep(
    model: ModelHandle,
    store: ActivationStore,
    directions: Directions,
    scores: torch.Tensor,
    kind: str,
    config: SweepConfig | None = None,
    emotions: Sequence[str] | None = None,
    progress: bool = True,
    reference: ActivationStore | None = None,
    stacked: bool = False,
) -> list[dict[str, Any]]:
    """Run the sweep. ``scores``: ``[n_layers, n_emotions, n_units]`` (neuron contributions or head
    importances, emotions in ``directions.emotions`` order); Delta-mu and mean activations come from
    ``reference`` (default ``store``) so the sweep can run on a subset of rows. Returns one record per (emotion, layer,
    mode, k, selection) with ``delta_s`` (mean over rows) and, for ``random``, the mean over seeds.
    ``stacked``: the top pick and the ``seeds`` random picks of a (layer, mode, k) run as stacked rows of
    one last-token pass per batch (equal to the default, one pass per pick, to float rounding; not faster on
    the CPU, measured in ``benchmarks/bench_discovery.py``, so off by default)."""
    cfg = config or SweepConfig()
    if kind not in ("neurons", "heads"):
        raise ValueError(f"kind must be 'neurons' or 'heads', got {kind!r}")
    bad = [m for m in cfg.modes if m not in MODES]
    if bad:
        raise ValueError(f"unknown sweep mode(s) {bad}: expected some of {MODES}")
    emotions = check_emotions(emotions, directions.emotions)
    name = "mlp_post" if kind == "neurons" else "z"
    n_units = model.arch.d_mlp if kind == "neurons" else model.arch.n_heads
    layers = list(range(model.arch.n_layers)) if cfg.layers is None else list(cfg.layers)
    ks = [k for k in cfg.ks if k <= n_units]
    v_ref = reference_directions(directions)
    ref = reference if reference is not None else store
    dmu = delta_mu(ref, name, directions.emotions)
    mean_act = emotion_mean(ref, name)  # [L, units(, d_head)]
    records: list[dict[str, Any]] = []
    total = len(emotions) * len(layers) * len(cfg.modes) * len(ks) * (1 + cfg.seeds)
    bar = tqdm(total=total, desc=f"{kind} ablation/enhancement sweep", disable=not progress)
    for emotion in emotions:
        e = directions.emotions.index(emotion)
        idx = store.index("emotion", emotion)
        prompts = store.prompts(model, idx)
        if stacked:
            runner: Any = _StackedLastTokenBatches(model, prompts, cfg.batch_size, 1 + cfg.seeds)
            base = runner.final_scores(v_ref[e])[0]
        else:
            runner = _LastTokenBatches(model, prompts, cfg.batch_size)
            base = runner.final_scores(v_ref[e])
        for layer in layers:
            ranked = torch.argsort(scores[layer, e], descending=True).tolist()
            for mode in cfg.modes:
                for k in ks:
                    picks = [("top", ranked[:k])] + [
                        ("random", random.Random(1000 * seed + 7 * layer + k).sample(range(n_units), k))
                        for seed in range(cfg.seeds)
                    ]
                    ivs = [_pick_intervention(kind, layer, mode, units, e, cfg, mean_act, dmu) for _, units in picks]
                    if stacked:
                        moved = list(runner.final_scores(v_ref[e], ivs))  # [picks, rows]
                    else:
                        moved = [runner.final_scores(v_ref[e], [iv]) for iv in ivs]
                    rand_vals = []
                    for (sel, units), vals in zip(picks, moved):
                        d = float((vals - base).mean())
                        bar.update(1)
                        if sel == "top":
                            records.append(
                                {
                                    "emotion": emotion,
                                    "layer": layer,
                                    "kind": kind,
                                    "mode": mode,
                                    "k": k,
                                    "selection": "top",
                                    "delta_s": d,
                                    "units": units,
                                }
                            )
                        else:
                            rand_vals.append(d)
                    if rand_vals:
                        records.append(
                            {
                                "emotion": emotion,
                                "layer": layer,
                                "kind": kind,
                                "mode": mode,
                                "k": k,
                                "selection": "random",
                                "delta_s": sum(rand_vals) / len(rand_vals),
                                "delta_s_seeds": rand_vals,
                            }
                        )
    bar.close()
    return records


@dataclass(frozen=True)
class GenerationJob:
    """Prompts generated under one set of edits and judged against one target emotion."""

    emotion: str
    prompts: list[list[int]]
    interventions: list[Intervention]


class JobResult(NamedTuple):
    """One :class:`GenerationJob`'s replies: fluent hits (broken replies are misses), the texts and the
    fluency check's broken flags."""

    hits: list[bool]
    replies: list[str]
    broken: list[bool]


def judged_generations(
    model: ModelHandle,
    jobs: Sequence[GenerationJob],
    settings: PromptSettings,
    gen: Any,
    judge: Any,
    *,
    progress: bool = True,
    desc: str = "judged generations",
    fluency: Any = "default",
) -> list[JobResult]:
    """Every job's rows through one ``generate`` call with per-row edits (so batches stay full however
    small the jobs are), judged against the job's emotion with the echoes of ``settings``' instruction
    removed, after the fluency check (:func:`~circuits.judges.base.judge_replies`; ``fluency`` as
    there); returns a :class:`JobResult` per job, in job order."""
    from circuits.core.generate import generate
    from circuits.judges.base import judge_replies
    from circuits.judges.fluency import resolve_fluency

    texts = generate(
        model,
        [p for j in jobs for p in j.prompts],
        gen,
        interventions=[j.interventions for j in jobs for _ in j.prompts],
        progress=progress,
        desc=desc,
    )
    targets = [j.emotion for j in jobs for _ in j.prompts]
    judged = judge_replies(
        judge,
        texts,
        targets,
        instructions=[settings.instructions(e) for e in targets],
        fluency=resolve_fluency(fluency, model.name),
    )
    out, start = [], 0
    for j in jobs:
        n = len(j.prompts)
        cut = slice(start, start + n)
        out.append(JobResult(judged.hits[cut], list(texts[cut]), judged.broken[cut]))
        start += n
    return out


ENHANCE_MODES = ("add", "scale")
"""Enhancement modes of :func:`generation_effect`: add lambda * Delta-mu on the units, or scale them."""


def generation_effect(
    model: ModelHandle,
    store: ActivationStore,
    emotions: Sequence[str],
    neuron_scores: Float[torch.Tensor, "n_layers n_emotions d_mlp"],
    head_scores: Float[torch.Tensor, "n_layers n_emotions n_heads"],
    k_neurons: int = 16,
    k_heads: int = 2,
    rows_per_emotion: int = 12,
    seeds: int = 2,
    max_new_tokens: int = 40,
    judge: Any = None,
    progress: bool = True,
    *,
    enhance: str | None = "add",
    enhance_factor: float | None = None,
    enhance_prompt: str = "neutral",
    enhance_positions: str = "last",
    reference: ActivationStore | None = None,
    return_replies: bool = False,
    fluency: Any = "default",
) -> dict[str, Any]:
    """Judged emotion of generations under ablation and under enhancement of the top units.

    Units: the top ``k_neurons`` neurons and top ``k_heads`` heads of every layer by ``neuron_scores``
    / ``head_scores`` (``[n_layers, n_emotions(all), n_units]`` in ``store.emotions`` order), against
    as many random units of every layer (``seeds`` draws, the same draws for both interventions).

    * ablation: the units are zeroed at every position, with the emotion prompt; keys ``"baseline"``
      (no intervention), ``"top"``, ``"random"``.
    * enhancement (``enhance`` = ``"add"``: add ``enhance_factor`` (default 1.0) x the emotion's
      Delta-mu on the units, the sweep's and circuit modulation's vector; ``"scale"``: multiply them
      by ``enhance_factor`` (default 2.0); ``None``: skip) at ``enhance_positions`` (default ``"last"``:
      the last prompt token, where Delta-mu was measured, as in the sweep; see
      :data:`circuits.core.hooks.POSITIONS`), with the ``enhance_prompt`` (``"neutral"``, default:
      can the units put the emotion into calm replies, or ``"emotion"``); keys ``"enhance_baseline"``
      (that prompt without intervention; equal to ``"baseline"`` for the emotion prompt),
      ``"enhanced_top"``, ``"enhanced_random"``.

    Values are fluent accuracies (share of replies judged as the emotion and not broken, in [0, 1];
    random: mean over seeds; ``fluency``: the check, as in :func:`~circuits.judges.base.judge_replies`).
    Returns ``{emotion: {key: acc}, "mean": {key: mean over emotions}, "broken_share": {key: share},
    "config": {...}}``;
    with ``return_replies`` each emotion also has ``"replies": {key: [replies]}`` (random keys: one
    list per seed). Delta-mu comes from ``reference`` (default ``store``; groups left incomplete by elicitation count
    for the emotions they kept).
    """
    from circuits.core.generate import GenerationSettings
    from circuits.judges.base import default_judge_instance

    if enhance is not None and enhance not in ENHANCE_MODES:
        raise ValueError(f"enhance must be one of {ENHANCE_MODES} or None, got {enhance!r}")
    if enhance_prompt not in ("neutral", "emotion"):
        raise ValueError(f"enhance_prompt must be 'neutral' or 'emotion', got {enhance_prompt!r}")
    judge = judge or default_judge_instance(model.name)
    gen = GenerationSettings(max_new_tokens=max_new_tokens)
    factor = float(enhance_factor if enhance_factor is not None else (1.0 if enhance == "add" else 2.0))
    edits = _UnitEdits(model.arch.n_layers, neuron_scores, head_scores, k_neurons, k_heads, factor, enhance_positions)
    if enhance == "add":
        ref = reference if reference is not None else store
        edits.dmu_mlp = delta_mu(ref, "mlp_post", store.emotions)  # [E, L, d_mlp]
        edits.dmu_z = delta_mu(ref, "z", store.emotions)  # [E, L, H, d_head]
    keys = ["baseline", "top", "random"] + (["enhance_baseline", "enhanced_top", "enhanced_random"] if enhance else [])
    plan, jobs = _generation_jobs(model, store, emotions, edits, rows_per_emotion, seeds, enhance, enhance_prompt)
    results = judged_generations(
        model,
        jobs,
        store.settings,
        gen,
        judge,
        progress=progress,
        desc="ablation/enhancement: judged generations",
        fluency=fluency,
    )
    out: dict[str, Any] = _accuracies(
        plan,
        results,
        emotions,
        keys,
        enhance_baseline_is_ablation_baseline=bool(enhance and enhance_prompt != "neutral"),
        return_replies=return_replies,
    )
    out["mean"] = {key: sum(out[e][key] for e in emotions) / max(1, len(emotions)) for key in keys}
    out["config"] = {
        "k_neurons": k_neurons,
        "k_heads": k_heads,
        "rows_per_emotion": rows_per_emotion,
        "seeds": seeds,
        "ablation": "zero",
        "ablation_positions": "all",
        "enhance": enhance,
        "enhance_factor": factor if enhance else None,
        "enhance_prompt": enhance_prompt if enhance else None,
        "enhance_positions": enhance_positions if enhance else None,
        "max_new_tokens": max_new_tokens,
    }
    return out


Pick = Callable[[torch.Tensor, int, int], list[int]]
"""(scores of one layer, k, layer) -> the units to edit."""


def _top_pick(s: torch.Tensor, k: int, L: int) -> list[int]:
    return torch.topk(s, min(k, s.numel())).indices.tolist()


def _random_pick(seed: int) -> Pick:
    return lambda s, k, L: random.Random(97 * seed + L).sample(range(s.numel()), min(k, s.numel()))


@dataclass
class _UnitEdits:
    """The interventions of :func:`generation_effect` on the picked units of every layer: ``zero`` (at every
    position), ``scale`` by ``factor`` or ``add`` ``factor`` x Delta-mu (``dmu_mlp``, ``dmu_z``) at
    ``positions``."""

    n_layers: int
    neuron_scores: torch.Tensor
    head_scores: torch.Tensor
    k_neurons: int
    k_heads: int
    factor: float
    positions: str
    dmu_mlp: torch.Tensor | None = None
    dmu_z: torch.Tensor | None = None

    def __call__(self, pick: Pick, e_idx: int, how: str) -> list[Intervention]:
        ivs = []
        for L in range(self.n_layers):
            for kind, scores, k in (
                ("neurons", self.neuron_scores, self.k_neurons),
                ("heads", self.head_scores, self.k_heads),
            ):
                units = tuple(pick(scores[L, e_idx], k, L))
                if not units:
                    continue
                if how == "zero":
                    ivs.append(Intervention(kind, L, "set", units, positions="all"))
                elif how == "scale":
                    ivs.append(Intervention(kind, L, "scale", units, factor=self.factor, positions=self.positions))
                else:
                    dmu = self.dmu_mlp if kind == "neurons" else self.dmu_z
                    ivs.append(
                        Intervention(
                            kind,
                            L,
                            "add",
                            units,
                            vector=dmu[e_idx, L, list(units)],
                            factor=self.factor,
                            positions=self.positions,
                        )
                    )
        return ivs


def _generation_jobs(
    model: ModelHandle,
    store: ActivationStore,
    emotions: Sequence[str],
    edits: _UnitEdits,
    rows_per_emotion: int,
    seeds: int,
    enhance: str | None,
    enhance_prompt: str,
) -> tuple[list[tuple[str, str]], list[GenerationJob]]:
    """Every (emotion, condition, seed) of :func:`generation_effect` as one job (all jobs go through one
    generate call), with its ``(emotion, key)`` in the same order."""
    plan: list[tuple[str, str]] = []
    jobs: list[GenerationJob] = []

    def add(emotion: str, key: str, prompts: list[list[int]], ivs: list[Intervention]) -> None:
        plan.append((emotion, key))
        jobs.append(GenerationJob(emotion, prompts, ivs))

    for emotion in emotions:
        e_idx = store.emotions.index(emotion)
        idx = store.index("emotion", emotion)[:rows_per_emotion]
        prompts = store.prompts(model, idx)
        add(emotion, "baseline", prompts, [])
        add(emotion, "top", prompts, edits(_top_pick, e_idx, "zero"))
        for seed in range(seeds):
            add(emotion, "random", prompts, edits(_random_pick(seed), e_idx, "zero"))
        if enhance:
            on = store.prompts(model, idx, neutral=True) if enhance_prompt == "neutral" else prompts
            if enhance_prompt == "neutral":
                add(emotion, "enhance_baseline", on, [])
            add(emotion, "enhanced_top", on, edits(_top_pick, e_idx, enhance))
            for seed in range(seeds):
                add(emotion, "enhanced_random", on, edits(_random_pick(seed), e_idx, enhance))
    return plan, jobs


def _accuracies(
    plan: Sequence[tuple[str, str]],
    results: Sequence[JobResult],
    emotions: Sequence[str],
    keys: Sequence[str],
    *,
    enhance_baseline_is_ablation_baseline: bool,
    return_replies: bool,
) -> dict[str, Any]:
    """``{emotion: {key: fluent accuracy}}`` from the judged jobs (random keys: mean over seeds), with the
    replies when ``return_replies``, and ``{"broken_share": {key: share}}`` over every emotion."""
    acc: dict[tuple[str, str], list[float]] = {}
    said: dict[tuple[str, str], list[list[str]]] = {}
    broken: dict[str, list[bool]] = {}
    for (emotion, key), r in zip(plan, results):
        acc.setdefault((emotion, key), []).append(sum(r.hits) / max(1, len(r.hits)))
        said.setdefault((emotion, key), []).append(r.replies)
        broken.setdefault(key, []).extend(r.broken)
    out: dict[str, Any] = {}
    for emotion in emotions:
        if enhance_baseline_is_ablation_baseline:  # the emotion prompt's baseline is the ablation baseline
            acc[(emotion, "enhance_baseline")], said[(emotion, "enhance_baseline")] = (
                acc[(emotion, "baseline")],
                said[(emotion, "baseline")],
            )
        res = {
            key: sum(acc.get((emotion, key), [])) / max(1, len(acc.get((emotion, key), []))) for key in keys
        }  # random: mean over seeds (0 without seeds, as before)
        replies = {key: said.get((emotion, key), []) if "random" in key else said[(emotion, key)][0] for key in keys}
        out[emotion] = {**res, "replies": replies} if return_replies else res
    out["broken_share"] = {k: sum(v) / len(v) for k, v in broken.items() if v}
    return out
