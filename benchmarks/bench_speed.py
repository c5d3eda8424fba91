"""Speed on a real model: steered generation, the store, the one-pass measures and how cost grows.

    python benchmarks/bench_speed.py                        # SmolLM2-135M-Instruct on CPU, 2 threads
    python benchmarks/bench_speed.py --model toy --quick    # seconds, for a smoke run
    python benchmarks/bench_speed.py --model /models/Qwen2.5-7B-Instruct --device cuda --dtype bfloat16

Everything is measured in one run, on the same prompts (SEV test-split user turns, neutral chat),
after a warm-up, and printed as ratios:

  generation   48 new tokens per reply (min = max, so every path makes the same number): plain HF
               generate (a separately loaded, unwrapped model, sdpa) with no edit; the fast path
               (circuits.core.fastpath) with no edit and steered; the bridge path steered. The edit is
               circuit-sized: add on 2 heads and 16 neurons of every layer (heads at every position,
               neurons at the last prompt token and each generated one, as circuit modulation does).
               Batched (--batch prompts in one batch) and unbatched (--single prompts one at a time).
  llama.cpp    single-stream tokens/s of the same GGUF in llama-cpp-python (when it is installed and
               the model is the packaged GGUF), against the batched steered aggregate
  store        build_store vs the bridge forward (no hooks) and the plain HF forward, same prompts/batches
  heads        per-head ablation reference (on --head-layers spread layers) vs one-pass head scores, per layer
  influence    intervention measure vs gradient estimate, every layer x both read points x 6 emotions,
               with their Spearman rank correlation
  discovery    discovery's second step on the same store, each against what it replaced (bench_discovery.py's
               rows): the probe on principal axes vs L-BFGS, the batched nulls vs one fit per seed, the
               gradient influence once vs twice, stacked vs per-pick sweeps
  evaluation   replies/s and tokens/s of evaluate_methods (prompting, neutral, direction steering)
  scoring      evaluate's one pass where two were made, each against the slow computation it replaced,
               on --batch prompts (emotion system prompts, six emotions in turn), --new-tokens replies:
               prompting: generate + a teacher-forced perplexity pass vs generate_scored (perplexity
               from the generation pass), with the share of replies the shortcut applies to;
               other replies: 4 per prompt (the neutral and the steered reply, each twice, as the four
               methods besides prompting), one full pass per reply vs each prompt cached once;
               judge: the LM encoder of the learned judge on every reply, batched in input order and by
               characters (the earlier batchings) vs by tokens; the largest relative difference of each
               pair of results is printed beside its ratio
  bfloat16     a bfloat16 copy of the model against the float32 one (float32 runs only): the bridge forward
               over the store prompts and batched unsteered generation
  targets      the issue's targets, from what the measured commands recorded: --discover-run (discover on
               the full train split), --evaluate-run (evaluate, 40 test scenarios, strength sweep) and
               --pytest-log (`make test` on a fresh clone); seconds against 600 / 600 / 480
  scaling      forward time against the number of prompts (16 / 64 / 256) and against the number of
               layers (the model cut to its first layers), per prompt and per layer
  memory       peak resident memory of the process

--generation-only stops after the generation and llama.cpp rows; --steered-only times only the batched
steered fast path against llama.cpp (the 2x row; try it with --batch and --dtype); --scoring-only
measures only the scoring rows.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import sys
import tempfile
from pathlib import Path

import torch
from scipy.stats import spearmanr

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_discovery import report_second_step, second_step, timed  # noqa: E402

from circuits.core.artifacts import write_text_atomic  # noqa: E402
from circuits.core.generate import GenerationSettings, generate  # noqa: E402
from circuits.core.hooks import Intervention  # noqa: E402
from circuits.core.model import load_model  # noqa: E402
from circuits.core.sev import DEFAULT_TEST, load_sev  # noqa: E402


def hf_dir(name: str) -> str:
    """The HF directory behind a model name (the converted GGUF for the packaged model)."""
    from circuits.core.gguf import resolve_gguf

    if name == "toy":
        from circuits.toy import TOY_MODEL_DIR

        return str(TOY_MODEL_DIR)
    converted = resolve_gguf(name)
    return str(converted) if converted is not None else name


def circuit_sized_edit(model) -> list[Intervention]:
    a = model.arch
    g = torch.Generator().manual_seed(0)
    k_heads, k_neurons = min(2, a.n_heads), min(16, a.d_mlp)
    out = []
    for L in range(a.n_layers):
        out.append(
            Intervention(
                "heads",
                L,
                "add",
                tuple(range(k_heads)),
                vector=0.05 * torch.randn(k_heads, a.d_head, generator=g),
                positions="all",
            )
        )
        out.append(
            Intervention(
                "neurons",
                L,
                "add",
                tuple(range(0, 4 * k_neurons, 4)),
                vector=0.05 * torch.randn(k_neurons, generator=g),
                positions="last+generated",
            )
        )
    return out


def hf_generate(hf, model, prompts, n_new, batch):
    """Plain HF generate over ``prompts`` in batches (no workbench code in the loop)."""
    with torch.no_grad():
        for s in range(0, len(prompts), batch):
            ids, mask = model.pad_left(prompts[s : s + batch])
            hf.generate(
                input_ids=ids,
                attention_mask=mask,
                max_new_tokens=n_new,
                min_new_tokens=n_new,
                do_sample=False,
                pad_token_id=model.pad_id,
            )


def llama_cpp_tokens_per_s(model_name: str, users: list[str], n_new: int, threads: int) -> float | None:
    try:
        import llama_cpp
    except ImportError:
        return None
    from circuits.core.gguf import packaged_gguf

    try:
        path = packaged_gguf(model_name) if not model_name.endswith(".gguf") else Path(model_name)
    except Exception:
        return None
    llm = llama_cpp.Llama(model_path=str(path), n_ctx=1024, n_threads=threads, verbose=False, seed=0)
    llm.create_chat_completion(messages=[{"role": "user", "content": users[0]}], max_tokens=4, temperature=0)
    made, secs = 0, 0.0
    for u in users:
        out, dt = timed(
            lambda: llm.create_chat_completion(
                messages=[{"role": "user", "content": u}], max_tokens=n_new, temperature=0
            )
        )
        made += out["usage"]["completion_tokens"]
        secs += dt
    return made / secs


def forward_all(hf, model, prompts, batch):
    with torch.no_grad():
        for s in range(0, len(prompts), batch):
            ids, mask = model.pad_left(prompts[s : s + batch])
            hf(input_ids=ids, attention_mask=mask, logits_to_keep=1, use_cache=False)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--threads", type=int, default=2, help="torch threads (and llama.cpp's)")
    ap.add_argument("--batch", type=int, default=48, help="prompts of the batched generation (evaluate's batch size)")
    ap.add_argument("--single", type=int, default=4, help="prompts of the unbatched generation")
    ap.add_argument("--new-tokens", type=int, default=48)
    ap.add_argument("--limit", type=int, default=4, help="SEV scenarios of the store and the one-pass measures")
    ap.add_argument("--ref-rows", type=int, default=2, help="rows per emotion for the head reference")
    ap.add_argument("--head-layers", type=int, default=6, help="spread layers of the head reference (0: all)")
    ap.add_argument(
        "--repeats", type=int, default=2, help="timed runs of each generation variant, interleaved; the fastest counts"
    )
    ap.add_argument("--influence-rows", type=int, default=8, help="neutral rows for the influence measures")
    ap.add_argument("--quick", action="store_true", help="tiny sizes everywhere (smoke run)")
    ap.add_argument("--json", default=None, help="also write the results here")
    ap.add_argument(
        "--generation-only", action="store_true", help="only the generation and llama.cpp rows (a few minutes)"
    )
    ap.add_argument("--scoring-only", action="store_true", help="only the scoring rows of evaluate (a few minutes)")
    ap.add_argument(
        "--steered-only",
        action="store_true",
        help="of the generation rows, only the batched steered fast path and llama.cpp (the 2x target row)",
    )
    ap.add_argument("--judge-layer", type=int, default=18, help="LM encoder layer of the judge row (cut to the model)")
    ap.add_argument("--null-seeds", type=int, default=2, help="permutations of the discovery nulls row")
    ap.add_argument("--sweep-layers", type=int, default=2, help="spread layers of the discovery sweep row")
    ap.add_argument("--discover-run", default=None, help="a discovery run whose recorded timings give the target row")
    ap.add_argument(
        "--evaluate-run", default=None, help="an evaluation (a run or its evaluation folder) for the target row"
    )
    ap.add_argument("--pytest-log", default=None, help="the output of `make test`, for the target row")
    ap.add_argument(
        "--targets-only", action="store_true", help="only print the target rows from the given runs and log (seconds)"
    )
    args = ap.parse_args()
    if args.quick:
        args.batch, args.single, args.new_tokens, args.limit = 4, 1, 8, 2
    if args.targets_only:
        report_targets(targets(args))
        return
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    res: dict = {"model": args.model, "device": args.device, "dtype": args.dtype, "threads": args.threads}
    tmp = Path(tempfile.mkdtemp(prefix="bench_speed_"))
    try:
        model = load_model(args.model, device=args.device, dtype=args.dtype)
        from transformers import AutoModelForCausalLM

        raw = AutoModelForCausalLM.from_pretrained(hf_dir(args.model), dtype=model.dtype).to(model.device).eval()
        test = load_sev(DEFAULT_TEST)
        users = [it.user_text for it in test.items(["anger"])][: max(args.batch, args.single)]
        prompts = [model.chat_ids(None, u) for u in users]
        batched, single = prompts[: args.batch], prompts[: args.single]
        n = args.new_tokens
        edit = circuit_sized_edit(model)
        gen_b = GenerationSettings(max_new_tokens=n, batch_size=args.batch)
        gen_1 = GenerationSettings(max_new_tokens=n, batch_size=1)

        def ours(ps, gs, ivs, backend="fast"):
            from dataclasses import replace

            return generate(
                model, ps, replace(gs, backend=backend), interventions=ivs or None, progress=False, min_new_tokens=n
            )

        if args.scoring_only:
            res["scoring"] = scoring(model, test, args)
            report_scoring(res["scoring"])
            if args.json:
                write_text_atomic(args.json, json.dumps(res, indent=1))
            return
        hf_generate(raw, model, batched[:2], 4, 2)  # warm-up
        ours(batched[:2], gen_b, edit)
        ours(batched[:2], gen_b, edit, "bridge")
        variants = {
            "hf_b": lambda: hf_generate(raw, model, batched, n, args.batch),
            "fast0_b": lambda: ours(batched, gen_b, []),
            "fast_b": lambda: ours(batched, gen_b, edit),
            "bridge_b": lambda: ours(batched, gen_b, edit, "bridge"),
            "hf_1": lambda: hf_generate(raw, model, single, n, 1),
            "fast_1": lambda: ours(single, gen_1, edit),
            "bridge_1": lambda: ours(single, gen_1, edit, "bridge"),
        }
        if args.steered_only:
            variants = {"fast_b": variants["fast_b"]}
        t: dict[str, float] = {}
        for _ in range(args.repeats):  # interleaved, so a slow spell of the machine hits every variant
            for key, fn in variants.items():
                t[key] = min(t.get(key, float("inf")), timed(fn)[1])
        tok_b, tok_1 = len(batched) * n, len(single) * n
        if args.steered_only:
            lcpp = llama_cpp_tokens_per_s(args.model, users[: args.single], n, args.threads)
            res["generation"] = {"new_tokens": n, "batch": len(batched), "fast_steered_tok_s": tok_b / t["fast_b"]}
            res["llama_cpp_single_tok_s"] = lcpp
            ratio = (tok_b / t["fast_b"]) / lcpp if lcpp else None
            res["generation"]["batched_steered_over_llama_cpp"] = ratio
            print(
                f"model {args.model} ({args.dtype}, {args.threads} threads): batched steered {tok_b / t['fast_b']:.0f} "
                f"tokens/s (batch {len(batched)} x {n}); llama.cpp single stream "
                + (f"{lcpp:.0f} tokens/s; ratio {ratio:.2f}x (goal >= 2)" if lcpp else "not measured")
            )
            if args.json:
                write_text_atomic(args.json, json.dumps(res, indent=1))
            return
        res["generation"] = {
            "new_tokens": n,
            "batch": len(batched),
            "single": len(single),
            "tok_s": {
                "plain_hf_batched": tok_b / t["hf_b"],
                "fast_no_edit_batched": tok_b / t["fast0_b"],
                "fast_steered_batched": tok_b / t["fast_b"],
                "bridge_steered_batched": tok_b / t["bridge_b"],
                "plain_hf_single": tok_1 / t["hf_1"],
                "fast_steered_single": tok_1 / t["fast_1"],
                "bridge_steered_single": tok_1 / t["bridge_1"],
            },
            "fast_steered_over_plain_hf_batched": t["fast_b"] / t["hf_b"],
            "fast_steered_over_plain_hf_single": t["fast_1"] / t["hf_1"],
            "bridge_over_fast_batched": t["bridge_b"] / t["fast_b"],
            "bridge_over_fast_single": t["bridge_1"] / t["fast_1"],
        }
        lcpp = llama_cpp_tokens_per_s(args.model, users[: args.single], n, args.threads)
        res["llama_cpp_single_tok_s"] = lcpp
        if lcpp:
            res["generation"]["batched_steered_over_llama_cpp"] = (tok_b / t["fast_b"]) / lcpp

        if args.generation_only:
            res["peak_rss_gib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
            report(res)
            if args.json:
                write_text_atomic(args.json, json.dumps(res, indent=1))
            return

        # ---- store, heads, influence (the one-pass measures against their references)
        from circuits.discovery import components, influence
        from circuits.discovery.directions import emotion_directions
        from circuits.discovery.store import StoreConfig, build_store
        from circuits.runs.discover import _restricted, _subset_rows

        sev = load_sev(limit=args.limit)
        store, t_store = timed(
            lambda: build_store(model, sev, tmp / "store", StoreConfig(limit=args.limit, batch_size=16), progress=False)
        )
        sp = store.prompts(model, range(len(store.rows)))
        order = sorted(range(len(sp)), key=lambda i: len(sp[i]))
        sp_sorted = [sp[i] for i in order]
        _, t_bridge_fwd = timed(lambda: forward_all(model.hf_model, model, sp_sorted, 16))
        _, t_hf_fwd = timed(lambda: forward_all(raw, model, sp_sorted, 16))
        res["store"] = {
            "rows": len(store.rows),
            "store_s": t_store,
            "bridge_forward_s": t_bridge_fwd,
            "plain_hf_forward_s": t_hf_fwd,
            "store_over_bridge": t_store / t_bridge_fwd,
            "store_over_plain_hf": t_store / t_hf_fwd,
        }
        dirs = emotion_directions(store)
        ref_rows = _subset_rows(store, "emotion", args.ref_rows, dirs.emotions, 0)
        sub = _restricted(store, ref_rows)
        one, t_one = timed(lambda: components.head_scores_one_pass(model, sub, dirs))
        from circuits.runs.discover import spread_layers

        hl = list(spread_layers(model.arch.n_layers, args.head_layers or model.arch.n_layers))
        ref, t_ref = timed(lambda: components.head_scores_reference(model, sub, dirs, layers=hl, progress=False))
        t_one_l = t_one * len(hl) / model.arch.n_layers  # the one pass covers every layer: its share
        res["heads"] = {
            "rows": int(ref_rows.numel()),
            "layers": hl,
            "one_pass_s": t_one,
            "reference_s": t_ref,
            "speedup_per_layer": t_ref / t_one_l,
            "spearman": float(spearmanr(one[hl].flatten(), ref[hl].flatten())[0]),
        }
        rows = store.index("neutral")[: args.influence_rows]
        grad, t_grad = timed(lambda: influence.influence_gradient(model, store, dirs, rows=rows, progress=False))
        inter, t_int = timed(lambda: influence.influence_intervention(model, store, dirs, rows=rows, progress=False))
        res["influence"] = {
            "rows": int(rows.numel()),
            "gradient_s": t_grad,
            "intervention_s": t_int,
            "speedup": t_int / t_grad,
            "spearman": float(spearmanr(grad.flatten(), inter.flatten())[0]),
        }

        # ---- discovery's second step (probe, nulls, gradient, sweep) on the same store
        res["discovery"] = second_step(
            model, store, dirs, list(dirs.emotions), args.influence_rows, args.null_seeds, args.sweep_layers
        )

        # ---- evaluation throughput
        from circuits.steer.methods import default_direction_layers, direction_steering
        from circuits.steer.metrics import EvalConfig, evaluate_methods

        layers = default_direction_layers(model.arch.n_layers)
        ecfg = EvalConfig(methods=("prompting", "neutral", "direction"), limit=1, max_new_tokens=n, examples=0)
        record: list = []
        _, t_eval = timed(
            lambda: evaluate_methods(
                model,
                test,
                {"direction": lambda e: direction_steering(dirs, e, layers, 4.0)},
                ecfg,
                progress=False,
                record=record,
            )
        )
        made = sum(len(model.tokenizer(r["text"], add_special_tokens=False)["input_ids"]) for r in record)
        res["evaluation"] = {
            "replies": len(record),
            "seconds": t_eval,
            "replies_s": len(record) / t_eval,
            "tokens_s": made / t_eval,
            "note": "includes judging and perplexity",
        }

        res["scoring"] = scoring(model, test, args)
        if model.dtype == torch.float32:
            res["bfloat16"] = bfloat16_ratios(model, args, sp_sorted, batched)

        # ---- scaling: prompts and layers
        many = (prompts * 64)[:256]
        scale_p = {}
        for k in (16, 64, 256):
            _, dt = timed(lambda: forward_all(raw, model, many[:k], 16))
            scale_p[k] = dt
        res["scaling_prompts_s"] = scale_p
        scale_l = {}
        L = model.arch.n_layers
        for nl in sorted({max(1, L // 4), max(1, L // 2), L}):
            cut = (
                AutoModelForCausalLM.from_pretrained(hf_dir(args.model), dtype=model.dtype, num_hidden_layers=nl)
                .to(model.device)
                .eval()
            )
            forward_all(cut, model, many[:16], 16)
            _, dt = timed(lambda: forward_all(cut, model, many[:64], 16))  # noqa: F821 (called before the del below)
            scale_l[nl] = dt
            del cut
        res["scaling_layers_s"] = scale_l
        res["peak_rss_gib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
        if torch.cuda.is_available():
            res["peak_gpu_gib"] = torch.cuda.max_memory_allocated() / 2**30
        res["targets"] = targets(args)
        report(res)
        if args.json:
            write_text_atomic(args.json, json.dumps(res, indent=1))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def bfloat16_ratios(model, args, forward_prompts, gen_prompts) -> dict:
    """bfloat16 against float32 on the same prompts: the bridge forward (the store's pass) and batched
    generation on the fast path, unsteered; a second copy of the model is loaded in bfloat16. The
    variants alternate (``--repeats``), the fastest of each counts."""
    n = args.new_tokens
    bf = load_model(args.model, device=args.device, dtype="bfloat16")
    gs = GenerationSettings(max_new_tokens=n, batch_size=args.batch)
    variants = {
        "fwd32": lambda: forward_all(model.hf_model, model, forward_prompts, 16),
        "fwd16": lambda: forward_all(bf.hf_model, bf, forward_prompts, 16),
        "gen32": lambda: generate(model, gen_prompts, gs, progress=False, min_new_tokens=n),
        "gen16": lambda: generate(bf, gen_prompts, gs, progress=False, min_new_tokens=n),
    }
    generate(bf, gen_prompts[:2], GenerationSettings(max_new_tokens=4), progress=False)  # warm-up
    forward_all(bf.hf_model, bf, forward_prompts[:16], 16)
    t: dict[str, float] = {}
    for _ in range(args.repeats):
        for key, fn in variants.items():
            t[key] = min(t.get(key, float("inf")), timed(fn)[1])
    made = len(gen_prompts) * n
    return {
        "prompts": len(forward_prompts),
        "batch": len(gen_prompts),
        "new_tokens": n,
        "forward_float32_s": t["fwd32"],
        "forward_bfloat16_s": t["fwd16"],
        "forward_speedup": t["fwd32"] / t["fwd16"],
        "tok_s_float32": made / t["gen32"],
        "tok_s_bfloat16": made / t["gen16"],
        "generation_speedup": t["gen32"] / t["gen16"],
    }


TARGET_S = {"discover": 600.0, "evaluate": 600.0, "make_test": 480.0}
"""The issue's targets on a 2-core CPU: ``discover`` on the full train split, ``evaluate`` of five methods
on 40 test scenarios with the strength sweep, ``make test`` on a fresh clone (seconds)."""


def targets(args) -> dict:
    """The target rows, read from what the measured commands recorded: a discovery run's and an
    evaluation's ``timings_s`` (the sum of their stages: the command less loading the model and drawing
    figures) and the last line of a ``make test`` log."""
    import re

    from circuits.core.readers import read_json

    out: dict = {}
    if args.discover_run:
        summary = read_json(Path(args.discover_run) / "summary.json")
        out["discover"] = {"seconds": sum(summary["timings_s"].values()), "rows": summary["rows"]}
    if args.evaluate_run:
        folder = Path(args.evaluate_run)
        if not (folder / "evaluation.json").is_file():
            folder = folder / "evaluation"
        ev = read_json(folder / "evaluation.json")
        out["evaluate"] = {
            "seconds": sum(ev["timings_s"].values()),
            "replies": sum(m["n"] for m in ev["methods"].values()),
        }
    if args.pytest_log:
        text = Path(args.pytest_log).read_text(errors="replace")
        found = re.findall(r"(\d+) passed.* in ([0-9.]+)s", text)
        if found:  # a CI log also holds the wheel test's line: the run with the most tests is make test's
            passed, secs = max(found, key=lambda f: int(f[0]))
            out["make_test"] = {"seconds": float(secs), "passed": int(passed)}
    for key, row in out.items():
        row["target_s"] = TARGET_S[key]
        row["over_target"] = row["seconds"] / TARGET_S[key]
    return out


def report_targets(tg: dict) -> None:
    for key in TARGET_S:
        if key not in tg:
            flag = {"make_test": "--pytest-log"}.get(key, f"--{key}-run")
            print(f"target {key}: not given ({flag})")
            continue
        r = tg[key]
        print(
            f"target {key}: {r['seconds']:.0f} s / {r['target_s']:.0f} s = {r['over_target']:.2f}x of the target "
            f"({'met' if r['over_target'] <= 1 else 'missed'})"
        )


def report(res: dict) -> None:
    g = res["generation"]
    ts = g["tok_s"]
    print(f"model {res['model']} ({res['device']}, {res['dtype']}, {res['threads']} threads)")
    print(f"generation, {g['new_tokens']} new tokens, batch {g['batch']} (tokens/s):")
    print(
        f"  plain HF {ts['plain_hf_batched']:.0f} | fast, no edit {ts['fast_no_edit_batched']:.0f} | fast, steered "
        f"{ts['fast_steered_batched']:.0f} | bridge, steered {ts['bridge_steered_batched']:.0f}"
    )
    print(f"  fast steered / plain HF   {g['fast_steered_over_plain_hf_batched']:.2f}x time (goal <= 1.1)")
    print(f"  bridge / fast (steered)   {g['bridge_over_fast_batched']:.2f}x time")
    print(
        f"unbatched ({g['single']} prompts): plain HF {ts['plain_hf_single']:.0f} | fast steered "
        f"{ts['fast_steered_single']:.0f} | bridge steered {ts['bridge_steered_single']:.0f} tokens/s; "
        f"fast / plain {g['fast_steered_over_plain_hf_single']:.2f}x, bridge / fast {g['bridge_over_fast_single']:.2f}x"
    )
    if res["llama_cpp_single_tok_s"]:
        print(
            f"llama.cpp single stream {res['llama_cpp_single_tok_s']:.0f} tokens/s; batched steered aggregate / "
            f"llama.cpp {g['batched_steered_over_llama_cpp']:.2f}x (goal >= 2)"
        )
    else:
        print("llama.cpp: llama-cpp-python not installed or the model is not a GGUF (not measured)")
    if "store" not in res:  # --generation-only
        print(f"peak RSS {res['peak_rss_gib']:.2f} GiB")
        return
    s = res["store"]
    print(
        f"store ({s['rows']} rows): {s['store_s']:.2f} s; / bridge forward {s['store_over_bridge']:.2f}x (goal <= 1.15), "
        f"/ plain HF forward {s['store_over_plain_hf']:.2f}x"
    )
    h = res["heads"]
    print(
        f"heads ({h['rows']} rows): reference on {len(h['layers'])} layers {h['reference_s']:.1f} s vs one pass over "
        f"every layer {h['one_pass_s']:.3f} s; per layer {h['speedup_per_layer']:.0f}x, Spearman {h['spearman']:.3f}"
    )
    i = res["influence"]
    print(
        f"influence ({i['rows']} rows, every layer x 2 points x 6 emotions): intervention {i['intervention_s']:.1f} s "
        f"vs gradient {i['gradient_s']:.2f} s = {i['speedup']:.0f}x (goal >= 100), Spearman {i['spearman']:.3f} "
        f"(goal >= 0.9)"
    )
    print(f"discovery, second step ({s['rows']} store rows):")
    print(f"{'measure':<12}{'baseline (s)':>15}{'ours (s)':>12}{'ratio':>10}")
    report_second_step(res["discovery"])
    e = res["evaluation"]
    print(
        f"evaluation: {e['replies']} replies in {e['seconds']:.1f} s = {e['replies_s']:.2f} replies/s, "
        f"{e['tokens_s']:.0f} tokens/s ({e['note']})"
    )
    report_scoring(res["scoring"])
    if "bfloat16" in res:
        b = res["bfloat16"]
        print(
            f"bfloat16 ({b['prompts']} store prompts; {b['batch']} x {b['new_tokens']} generated tokens): bridge "
            f"forward float32 {b['forward_float32_s']:.2f} s / bfloat16 {b['forward_bfloat16_s']:.2f} s = "
            f"{b['forward_speedup']:.2f}x; generation {b['tok_s_float32']:.0f} / {b['tok_s_bfloat16']:.0f} tokens/s "
            f"= {b['generation_speedup']:.2f}x"
        )
    report_targets(res["targets"])
    sp = res["scaling_prompts_s"]
    print("forward vs prompts: " + ", ".join(f"{k}: {v:.2f} s ({1e3 * v / k:.1f} ms/prompt)" for k, v in sp.items()))
    sl = res["scaling_layers_s"]
    print(
        "forward vs layers (64 prompts): "
        + ", ".join(f"{k}: {v:.2f} s ({1e3 * v / k:.0f} ms/layer)" for k, v in sl.items())
    )
    print(
        f"peak RSS {res['peak_rss_gib']:.2f} GiB"
        + (f", peak GPU {res['peak_gpu_gib']:.2f} GiB" if "peak_gpu_gib" in res else "")
    )


def _max_rel(a: list[float], b: list[float]) -> float:
    return max(abs(x - y) / max(abs(y), 1e-12) for x, y in zip(a, b))


def scoring(model, test, args) -> dict:
    """The scoring rows (see the module docstring): each shortcut of evaluate against the slow computation."""
    from circuits.core.emotions import EMOTIONS
    from circuits.core.generate import generate_scored
    from circuits.judges.encoder import LMEncoder
    from circuits.steer.metrics import generation_perplexity, reply_perplexity

    n = args.new_tokens
    users = [it.user_text for it in test.items(list(EMOTIONS))][: args.batch]
    emo = [EMOTIONS[i % len(EMOTIONS)] for i in range(len(users))]
    own = [model.chat_ids(e, u) for e, u in zip(emo, users)]  # prompting: generated and scored under these
    neutral = [model.chat_ids(None, u) for u in users]
    gs = GenerationSettings(max_new_tokens=n, batch_size=args.batch, repetition_penalty=1.1)
    kw = dict(progress=False, min_new_tokens=min(10, n), no_repeat_ngram_size=3)
    generate(model, own[:2], GenerationSettings(max_new_tokens=4), progress=False)  # warm-up
    texts, t_gen = timed(lambda: generate(model, own, gs, **kw))
    slow_ppl, t_ppl = timed(lambda: reply_perplexity(model, own, texts, shared_prefix=False))
    scored, t_scored = timed(lambda: generate_scored(model, own, gs, **kw))
    fast = [generation_perplexity(model, r) for r in scored]
    hits = [(f, s) for f, s in zip(fast, slow_ppl) if f is not None]
    assert [r.text for r in scored] == texts
    out: dict = {
        "prompts": len(own),
        "new_tokens": n,
        "prompting": {
            "generate_s": t_gen,
            "perplexity_pass_s": t_ppl,
            "generate_scored_s": t_scored,
            "speedup": (t_gen + t_ppl) / t_scored,
            "shortcut_share": len(hits) / len(fast),
            "max_rel_diff": _max_rel([f for f, _ in hits], [s for _, s in hits]) if hits else float("nan"),
        },
    }
    steered = generate(model, neutral, gs, interventions=circuit_sized_edit(model), **kw)
    plain = generate(model, neutral, gs, **kw)
    prompts, replies = own * 4, plain + steered + plain + steered
    slow, t_slow = timed(lambda: reply_perplexity(model, prompts, replies, shared_prefix=False))
    cached, t_cached = timed(lambda: reply_perplexity(model, prompts, replies, shared_prefix=True))
    out["shared_prefix"] = {
        "replies": len(replies),
        "full_passes_s": t_slow,
        "cached_prefix_s": t_cached,
        "speedup": t_slow / t_cached,
        "max_rel_diff": _max_rel(cached, slow),
    }
    layer = min(args.judge_layer, model.arch.n_layers)
    enc = LMEncoder(hf_dir(args.model) if args.model == "toy" else args.model, layer)
    texts_all = texts + replies[: 2 * len(users)]
    by_tokens = by_input = torch.zeros(0)

    def batched_by(key) -> torch.Tensor:
        """The encoder's pass with the earlier batchings (``key`` orders the texts; None: input order)."""
        from circuits.core.hooks import masked_mean

        order = sorted(range(len(texts_all)), key=key) if key else list(range(len(texts_all)))
        got = torch.zeros(len(texts_all), enc.dim)
        with torch.no_grad():
            for s in range(0, len(order), enc.batch_size):
                idx = order[s : s + enc.batch_size]
                e = enc.tokenizer(
                    [texts_all[i] or "." for i in idx],
                    return_tensors="pt",
                    padding=True,
                    truncation=True,
                    max_length=256,
                )
                got[torch.tensor(idx)] = masked_mean(enc.model(**e).last_hidden_state.float(), e["attention_mask"])
        return got

    enc(texts_all[:2])  # warm-up
    variants = {
        "tokens": lambda: enc([t or "." for t in texts_all]),
        "input": lambda: batched_by(None),
        "chars": lambda: batched_by(lambda i: len(texts_all[i])),
    }
    t: dict[str, float] = {}
    for _ in range(args.repeats):  # interleaved, the fastest counts (as the generation rows)
        for key, fn in variants.items():
            got, dt = timed(fn)
            t[key] = min(t.get(key, float("inf")), dt)
            if key in ("tokens", "input"):
                by_tokens, by_input = (got, by_input) if key == "tokens" else (by_tokens, got)
    t_tok, t_input, t_chars = t["tokens"], t["input"], t["chars"]
    out["judge_encoder"] = {
        "texts": len(texts_all),
        "layer": layer,
        "input_order_s": t_input,
        "by_characters_s": t_chars,
        "by_tokens_s": t_tok,
        "speedup_over_input_order": t_input / t_tok,
        "speedup_over_characters": t_chars / t_tok,
        "max_abs_diff": float((by_tokens - by_input).abs().max()),
    }
    return out


def report_scoring(sc: dict) -> None:
    p, q, j = sc["prompting"], sc["shared_prefix"], sc["judge_encoder"]
    print(
        f"scoring ({sc['prompts']} prompts, {sc['new_tokens']} new tokens): prompting generate + perplexity pass "
        f"{p['generate_s'] + p['perplexity_pass_s']:.1f} s vs scored generation {p['generate_scored_s']:.1f} s = "
        f"{p['speedup']:.2f}x (shortcut on {p['shortcut_share']:.0%} of replies, max rel diff {p['max_rel_diff']:.1e})"
    )
    print(
        f"  other replies ({q['replies']}): one full pass each {q['full_passes_s']:.1f} s vs prompt cached once "
        f"{q['cached_prefix_s']:.1f} s = {q['speedup']:.2f}x (max rel diff {q['max_rel_diff']:.1e})"
    )
    print(
        f"  judge encoder ({j['texts']} texts, layer {j['layer']}): input order {j['input_order_s']:.2f} s, by characters "
        f"{j['by_characters_s']:.2f} s, by tokens {j['by_tokens_s']:.2f} s = {j['speedup_over_input_order']:.2f}x / "
        f"{j['speedup_over_characters']:.2f}x (max abs diff {j['max_abs_diff']:.1e})"
    )


if __name__ == "__main__":
    main()
