"""Discovery benchmarks: one-pass vs reference measures, store overhead, peak memory.

    python benchmarks/bench_discovery.py --model toy --limit 8
    python benchmarks/bench_discovery.py --shape qwen2.5-7b --layers 2 --limit 1   # CPU, Qwen2.5-7B layer dims
    python benchmarks/bench_discovery.py --model Qwen/Qwen2.5-7B-Instruct --device cuda --dtype bfloat16  # GPU

Everything is measured in one run and printed as a table of wall times and ratios:
  heads      per-head ablation reference vs one-pass head scores (same rows, same layers)
  influence  intervention measure (4 alphas) vs one-pass gradient estimate (same rows)
  store      activation store build vs forward passes over the same prompts and batches, asking like
             the store for the last position's logits only: (a) through the TransformerBridge-wrapped
             model without hooks (the store's own cost: hooks, copies, writes) and (b) through a
             separately loaded, unwrapped HF model (AutoModelForCausalLM, its default attention):
             (b) adds the cost of working through TransformerBridge (its eager attention)
  memory     peak resident memory of the process (and peak GPU memory on CUDA)
  probe      the emotion probe (mlp read point, 5 scenario-grouped folds, every layer): plain L-BFGS
             (the reference) vs the preconditioned fit on each fold's principal axes
  nulls      permuted-label probe nulls (--null-seeds seeds): one L-BFGS probe per permuted store vs all
             permutations in one solve on the real probe's rows and folds
  gradient   the gradient influence on every neutral row and on the agreement subset
             (--influence-rows): two calls vs one per-row call whose subset is taken
  sweep      a neuron sweep (every emotion, --sweep-layers spread layers, k 1 2 4 16, zero and add, 2
             random seeds): one last-token pass per pick vs the top and random picks stacked in one pass
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from circuits.core.artifacts import write_text_atomic  # noqa: E402
from circuits.core.model import load_model  # noqa: E402
from circuits.core.sev import load_sev  # noqa: E402
from circuits.discovery import components, influence  # noqa: E402
from circuits.discovery.directions import emotion_directions, probe_accuracy, probe_data  # noqa: E402
from circuits.discovery.label_nulls import direction_nulls  # noqa: E402
from circuits.discovery.store import StoreConfig, build_store  # noqa: E402

SHAPES: dict[str, tuple[str, dict]] = {
    # the published configs' layer dimensions (hidden, MLP, query / key-value heads, vocabulary, depth)
    "qwen2.5-7b": (
        "qwen2",
        dict(
            hidden_size=3584,
            intermediate_size=18944,
            num_attention_heads=28,
            num_key_value_heads=4,
            embedding_rows=152064,
            num_hidden_layers=28,
        ),
    ),
    "llama-3.2-3b": (
        "llama",
        dict(
            hidden_size=3072,
            intermediate_size=8192,
            num_attention_heads=24,
            num_key_value_heads=8,
            head_dim=128,
            embedding_rows=128256,
            num_hidden_layers=28,
        ),
    ),
    # the same architectures at toy size, for checking the scripts on a CPU
    "tiny-qwen2": ("qwen2", dict(hidden_size=64, intermediate_size=128, num_attention_heads=4, num_key_value_heads=2)),
    "tiny-llama": ("llama", dict(hidden_size=64, intermediate_size=128, num_attention_heads=4, num_key_value_heads=2)),
}
"""Shape name -> (architecture, HF config fields) of the random-weight models of :func:`shaped_model_dir`."""


def shaped_model_dir(shape: str, out: Path, layers: int | None = None, dtype: torch.dtype = torch.float32) -> Path:
    """A random-init model of ``shape`` (:data:`SHAPES`: real layer dimensions and vocabulary size, so
    every matrix product costs what it costs in the real model) with ``layers`` layers (default the
    shape's depth), saved in ``dtype`` with a small SEV-trained tokenizer (the vocabulary rows past it
    are never read, but the unembedding still computes them). Nothing is downloaded."""
    from circuits.toy.tiny import build_tiny_model
    from circuits.toy.tokenizer import build_tokenizer

    arch, dims = SHAPES[shape]
    dims = dict(dims)
    if layers is not None:
        dims["num_hidden_layers"] = layers
    sev = load_sev()
    tok = build_tokenizer([s.scenario + " " + " ".join(s.events.values()) for s in sev.scenarios], vocab_size=2048)
    return build_tiny_model(arch, out, seed=0, tokenizer=tok, dtype=dtype, initializer_range=0.02, **dims)


def timed(fn):
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    t = time.perf_counter()
    out = fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return out, time.perf_counter() - t


def _max_diff(a, b) -> float:
    return float(torch.as_tensor(a, dtype=torch.float64).sub(torch.as_tensor(b, dtype=torch.float64)).abs().max())


def second_step(model, store, dirs, emotions, influence_rows: int, null_seeds: int, sweep_layers: int) -> dict:
    """Discovery's second speed step, each fast path against the computation it replaced (the probe,
    its nulls, the gradient influence, the stacked sweep; see the module docstring): seconds of both,
    their ratio and the largest difference of their results."""
    from circuits.discovery.ablation import SweepConfig, sweep
    from circuits.runs.discover import spread_layers

    acc_ref, t_probe_ref = timed(lambda: probe_accuracy(store, "mlp", solver="lbfgs"))
    acc_fast, t_probe = timed(lambda: probe_accuracy(store, "mlp"))
    data = {"mlp": probe_data(store, "mlp")}  # gathered with the real probe in discover
    null_ref, t_null_ref = timed(lambda: direction_nulls(store, seeds=null_seeds, batched=False, solver="lbfgs"))
    null_fast, t_null = timed(lambda: direction_nulls(store, seeds=null_seeds, data=data))
    neutral = store.index("neutral")
    sub_rows = neutral[:influence_rows]

    def gradient_twice():
        return (
            influence.influence_gradient(model, store, dirs, progress=False),
            influence.influence_gradient(model, store, dirs, rows=sub_rows, progress=False),
        )

    def gradient_once():
        per_row = influence.influence_gradient(model, store, dirs, per_row=True, progress=False)
        return per_row.mean(0), per_row[: len(sub_rows)].mean(0)

    (g_all, g_sub), t_grad2 = timed(gradient_twice)
    (f_all, f_sub), t_grad1 = timed(gradient_once)
    nc = components.neuron_contributions(model, store, dirs)
    scfg = SweepConfig(ks=(1, 2, 4, 16), seeds=2, layers=tuple(spread_layers(model.arch.n_layers, sweep_layers)))
    sw_ref, t_sweep_ref = timed(
        lambda: sweep(model, store, dirs, nc, "neurons", scfg, emotions, progress=False, stacked=False)
    )
    sw_fast, t_sweep = timed(
        lambda: sweep(model, store, dirs, nc, "neurons", scfg, emotions, progress=False, stacked=True)
    )
    return {
        "probe_rows": len(data["mlp"].idx),
        "probe_lbfgs_s": t_probe_ref,
        "probe_pca_s": t_probe,
        "probe_speedup": t_probe_ref / t_probe,
        "probe_max_acc_diff": _max_diff(acc_fast, acc_ref),
        "null_seeds": null_seeds,
        "nulls_per_seed_s": t_null_ref,
        "nulls_batched_s": t_null,
        "nulls_speedup": t_null_ref / t_null,
        "nulls_max_acc_diff": _max_diff(
            null_fast["probe_accuracy"]["mlp"]["seeds"], null_ref["probe_accuracy"]["mlp"]["seeds"]
        ),
        "gradient_rows": [len(neutral), len(sub_rows)],
        "gradient_two_calls_s": t_grad2,
        "gradient_one_call_s": t_grad1,
        "gradient_speedup": t_grad2 / t_grad1,
        "gradient_max_diff": max(_max_diff(f_all, g_all), _max_diff(f_sub, g_sub)),
        "sweep_records": len(sw_ref),
        "sweep_per_pick_s": t_sweep_ref,
        "sweep_stacked_s": t_sweep,
        "sweep_speedup": t_sweep_ref / t_sweep,
        "sweep_max_delta_s_diff": _max_diff([r["delta_s"] for r in sw_fast], [r["delta_s"] for r in sw_ref]),
    }


def report_second_step(r: dict) -> None:
    """Print the rows of :func:`second_step` (baseline seconds, ours, ratio, what was compared)."""
    print(
        f"{'probe':<12}{r['probe_lbfgs_s']:>15.3f}{r['probe_pca_s']:>12.4f}{r['probe_speedup']:>9.1f}x   "
        f"(L-BFGS / principal axes, {r['probe_rows']} rows; max accuracy difference {r['probe_max_acc_diff']:.4f})"
    )
    print(
        f"{'nulls':<12}{r['nulls_per_seed_s']:>15.3f}{r['nulls_batched_s']:>12.4f}{r['nulls_speedup']:>9.1f}x   "
        f"(per seed / batched, {r['null_seeds']} seeds; max accuracy difference {r['nulls_max_acc_diff']:.4f})"
    )
    n_all, n_sub = r["gradient_rows"]
    print(
        f"{'gradient':<12}{r['gradient_two_calls_s']:>15.3f}{r['gradient_one_call_s']:>12.4f}"
        f"{r['gradient_speedup']:>9.1f}x   (two calls / one per-row call, {n_all} + {n_sub} rows; "
        f"max difference {r['gradient_max_diff']:.2e})"
    )
    print(
        f"{'sweep':<12}{r['sweep_per_pick_s']:>15.3f}{r['sweep_stacked_s']:>12.4f}{r['sweep_speedup']:>9.1f}x   "
        f"(one pass per pick / stacked picks, {r['sweep_records']} records; max delta_s difference "
        f"{r['sweep_max_delta_s_diff']:.2e})"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="toy")
    ap.add_argument(
        "--shape", choices=SHAPES, default=None, help="a random-init model of this shape instead of --model"
    )
    ap.add_argument("--layers", type=int, default=None, help="layers of the --shape model (default its depth)")
    ap.add_argument("--limit", type=int, default=8, help="SEV scenarios")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--ref-rows", type=int, default=12, help="rows per emotion for the head reference")
    ap.add_argument("--influence-rows", type=int, default=24, help="neutral rows for the influence measures")
    ap.add_argument("--emotions", nargs="+", default=None, help="restrict head and influence measures to these")
    ap.add_argument("--sweep-layers", type=int, default=2, help="spread layers of the sweep measure")
    ap.add_argument("--null-seeds", type=int, default=2, help="permutations of the probe nulls")
    ap.add_argument("--json", default=None, help="also write the results here")
    args = ap.parse_args()
    torch.manual_seed(0)
    tmp = Path(tempfile.mkdtemp(prefix="bench_"))
    try:
        name = str(shaped_model_dir(args.shape, tmp / "model", args.layers)) if args.shape else args.model
        model = load_model(name, device=args.device, dtype=args.dtype)
        sev = load_sev(limit=args.limit)
        cfg = StoreConfig(limit=args.limit, batch_size=args.batch_size)
        with torch.no_grad():  # warm-up, so neither timed run pays first-call costs
            ids, mask = model.pad_left([model.chat_ids("warm up", "the bus was late")] * args.batch_size)
            model.hf_model(input_ids=ids, attention_mask=mask, use_cache=False)
        store, t_store = timed(lambda: build_store(model, sev, tmp / "store", cfg, progress=False))
        # plain HF forward over the same prompts, same batching (sorted by length, like the store)
        prompts = store.prompts(model, range(len(store.rows)))
        order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))

        def plain(hf_model):
            with torch.no_grad():
                for s in range(0, len(order), args.batch_size):
                    ids, mask = model.pad_left([prompts[i] for i in order[s : s + args.batch_size]])
                    hf_model(input_ids=ids, attention_mask=mask, logits_to_keep=1, use_cache=False)

        _, t_plain = timed(lambda: plain(model.hf_model))
        dirs = emotion_directions(store)
        emotions = args.emotions or list(dirs.emotions)
        if args.emotions:  # restrict both measures to these emotions (keeps big-model runs short)
            from circuits.discovery.directions import Directions

            keep = [dirs.emotions.index(e) for e in emotions]
            dirs = Directions(
                tuple(emotions), dirs.unit[:, :, keep], dirs.diff[:, :, keep], dirs.n_groups, dirs.fingerprint
            )
        sel = torch.cat([store.index("emotion", e)[: args.ref_rows] for e in emotions]).sort().values
        from circuits.runs.discover import _restricted

        sub = _restricted(store, sel)
        sub_dirs = dirs
        _, t_one = timed(lambda: components.head_scores_one_pass(model, sub, sub_dirs))
        _, t_ref = timed(lambda: components.head_scores_reference(model, sub, sub_dirs, progress=False))
        rows = store.index("neutral")[: args.influence_rows]
        _, t_igrad = timed(lambda: influence.influence_gradient(model, store, dirs, rows=rows, progress=False))
        _, t_iint = timed(lambda: influence.influence_intervention(model, store, dirs, rows=rows, progress=False))
        # discovery's second speed step: each fast path against the computation it replaced
        step2 = second_step(model, store, dirs, emotions, args.influence_rows, args.null_seeds, args.sweep_layers)
        peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
        peak_gpu = torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else None
        # last, after peak memory is read: a second, unwrapped copy of the model for the plain HF forward
        from transformers import AutoModelForCausalLM

        try:
            raw = AutoModelForCausalLM.from_pretrained(model.name, dtype=model.dtype).to(model.device).eval()
        except OSError:  # a packaged model (e.g. smollm2-135m, from GGUF) has no HF name to load by: nan
            t_raw = float("nan")
        else:
            _, t_raw = timed(lambda: plain(raw))  # noqa: F821 (called before the del below)
            del raw
        res = {
            "model": model.name if not args.shape else f"random {args.shape} shape, {model.arch.n_layers} layers",
            "arch": model.arch.to_dict(),
            "device": str(model.device),
            "dtype": str(model.dtype),
            "rows": len(store.rows),
            "head_ref_rows": int(sel.numel()),
            "influence_rows": int(rows.numel()),
            "store_s": t_store,
            "bridge_forward_s": t_plain,
            "store_overhead_vs_bridge": t_store / t_plain,
            "hf_forward_s": t_raw,
            "store_overhead_vs_hf": t_store / t_raw,
            "heads_one_pass_s": t_one,
            "heads_reference_s": t_ref,
            "heads_speedup": t_ref / t_one,
            "influence_gradient_s": t_igrad,
            "influence_intervention_s": t_iint,
            "influence_speedup": t_iint / t_igrad,
            **step2,
            "peak_rss_gib": peak_rss,
        }
        if peak_gpu is not None:
            res["peak_gpu_gib"] = peak_gpu
        print(f"model: {res['model']} ({res['device']}, {res['dtype']}); {res['rows']} store rows")
        print(f"{'measure':<12}{'baseline (s)':>15}{'ours (s)':>12}{'ratio':>10}")
        print(f"{'heads':<12}{t_ref:>15.3f}{t_one:>12.4f}{t_ref / t_one:>9.0f}x   ({res['head_ref_rows']} rows)")
        print(
            f"{'influence':<12}{t_iint:>15.3f}{t_igrad:>12.4f}{t_iint / t_igrad:>9.1f}x   ({res['influence_rows']} rows)"
        )
        print(
            f"{'store':<12}{t_plain:>15.3f}{t_store:>12.3f}{t_store / t_plain:>9.2f}x   (store / bridge forward, no hooks)"
        )
        print(
            f"{'store':<12}{t_raw:>15.3f}{t_store:>12.3f}{t_store / t_raw:>9.2f}x   (store / plain HF forward, unwrapped model)"
        )
        report_second_step(step2)
        print(
            f"peak RSS {peak_rss:.2f} GiB"
            + (f", peak GPU {res['peak_gpu_gib']:.2f} GiB" if "peak_gpu_gib" in res else "")
        )
        if args.json:
            write_text_atomic(args.json, json.dumps(res, indent=1))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
