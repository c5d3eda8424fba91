"""``emocircuits toy train`` and ``emocircuits toy evaluate``."""

from __future__ import annotations

import argparse
from pathlib import Path

from circuits.cli import common
from circuits.cli.common import add_config_flags, config_from_args
from circuits.core.config import check_number

TRAIN_FLAGS = ("seed", "epochs", "limit")


def _train(args: argparse.Namespace) -> int:
    import torch

    from circuits.toy import TOY_MODEL_DIR
    from circuits.toy.train import ToyTrainConfig, train_toy

    cfg = config_from_args(ToyTrainConfig, args, TRAIN_FLAGS)  # every number is checked before training
    check_number(args.threads, "--threads", int, min=1)
    torch.set_num_threads(args.threads)
    out = Path(args.out) if args.out else TOY_MODEL_DIR
    with common.out_folder(out):  # an existing file, or another writer, is refused before training
        log = train_toy(cfg, out)
    print(
        f"saved {out}: {log['n_params']:,} parameters, {log['corpus_chats']} chats, "
        f"final loss {log['final_loss']:.3f}, {log['train_seconds']:.0f} s"
    )
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from circuits.core.generate import GenerationSettings
    from circuits.core.model import load_model
    from circuits.core.sev import DEFAULT_TEST, load_sev
    from circuits.toy.accuracy import evaluate_toy, format_table

    if args.limit is not None:
        check_number(args.limit, "--limit", int, min=1)
    check_number(args.max_new_tokens, "--max-new-tokens", int, min=1)
    common.check_output_files(args, "json")
    test = load_sev(args.sev or DEFAULT_TEST, limit=args.limit)
    model = load_model(args.model)
    result = evaluate_toy(model, test, generation=GenerationSettings(max_new_tokens=args.max_new_tokens))
    print(f"{model.name} on {test.path} ({len(test)} scenarios x 3 valences), greedy, lexicon judge")
    print(format_table(result))
    if args.json:
        from circuits.core.artifacts import write_json_atomic

        write_json_atomic(args.json, result)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    from circuits.toy.train import ToyTrainConfig

    toy = sub.add_parser("toy", help="the shipped toy emotion model").add_subparsers(dest="toy_command", required=True)
    tr = toy.add_parser("train", help="retrain the toy model (seeded; about 10 minutes on 2 CPU cores)")
    tr.add_argument("--out", help="output directory (default: the shipped circuits/toy/model)")
    add_config_flags(tr, ToyTrainConfig, TRAIN_FLAGS)
    tr.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    tr.set_defaults(func=_train)
    ev = toy.add_parser("evaluate", help="print the per-prompt emotion table on held-out SEV scenarios")
    ev.add_argument("--model", default="toy", help="model name or directory (default: the toy model)")
    ev.add_argument("--sev", help="SEV file (default: sev_data/sev_test.jsonl)")
    ev.add_argument("--limit", type=int, default=None, help="use only N scenarios")
    ev.add_argument("--max-new-tokens", type=int, default=48)
    ev.add_argument("--json", help="also write the full result (with every reply) to this JSON file")
    ev.set_defaults(func=_evaluate)
