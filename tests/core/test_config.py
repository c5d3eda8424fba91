"""Flags generated from config dataclasses: each default exists once, in the dataclass."""

from __future__ import annotations

import argparse
import dataclasses

import pytest

from circuits import cli
from circuits.circuit import AllocationConfig
from circuits.cli.common import add_config_flags, config_from_args
from circuits.cli.discover import ALLOCATION_FLAGS, DISCOVER_FLAGS
from circuits.cli.evaluate import EVALUATE_FLAGS
from circuits.cli.va import VA_FLAGS
from circuits.core.config import help_field
from circuits.runs.discover import DiscoverConfig
from circuits.runs.valence_arousal import VAConfig
from circuits.steer.metrics import EvalConfig


@pytest.mark.parametrize(
    "argv, cls, names",
    [
        (["discover", "--out", "x"], DiscoverConfig, DISCOVER_FLAGS),
        (["discover", "--out", "x"], AllocationConfig, ALLOCATION_FLAGS),
        (["evaluate", "--run", "x"], EvalConfig, EVALUATE_FLAGS),
        (["va", "--out", "x"], VAConfig, VA_FLAGS),
    ],
)
def test_cli_defaults_are_the_config_defaults(argv, cls, names):
    args = cli.build_parser().parse_args(argv)
    assert config_from_args(cls, args, names) == cls()


def test_cli_flags_reach_the_configs():
    args = cli.build_parser().parse_args(
        [
            "discover",
            "--out",
            "x",
            "--sweep-ks",
            "1",
            "3",
            "--influence-alphas",
            "0.2",
            "--no-figures",
            "--elicit",
            "--reference-rows",
            "5",
            "--budget-per-sublayer",
            "6",
            "--neuron-share",
            "0.5",
        ]
    )
    alloc = config_from_args(AllocationConfig, args, ALLOCATION_FLAGS)
    cfg = config_from_args(DiscoverConfig, args, DISCOVER_FLAGS, allocation=alloc)
    assert cfg == dataclasses.replace(
        DiscoverConfig(),
        sweep_ks=(1, 3),
        alphas=(0.2,),
        figures=False,
        elicitation=True,
        reference_head_rows=5,
        allocation=AllocationConfig(budget_per_sublayer=6, neuron_share=0.5),
    )
    args = cli.build_parser().parse_args(
        [
            "evaluate",
            "--run",
            "x",
            "--methods",
            "circuit",
            "--direction-layers",
            "1",
            "2",
            "--positions",
            "last",
            "--circuit-lambda",
            "2",
        ]
    )
    assert config_from_args(EvalConfig, args, EVALUATE_FLAGS) == dataclasses.replace(
        EvalConfig(), methods=("circuit",), direction_layers=(1, 2), positions="last", circuit_lambda=2.0
    )
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["evaluate", "--run", "x", "--positions", "first"])  # choices from metadata


def test_generated_flags_on_a_hand_built_config(capsys):
    @dataclasses.dataclass(frozen=True)
    class C:
        k: int = help_field(4, "units per layer")
        names: tuple[str, ...] | None = help_field(None, "names")
        on: bool = help_field(True, "switch")
        mode: str = help_field("a", "mode", choices=("a", "b"), flag="--the-mode")

    p = argparse.ArgumentParser()
    add_config_flags(p, C, ["k", "names", "on", "mode"])
    assert config_from_args(C, p.parse_args([]), ["k", "names", "on", "mode"]) == C()
    got = config_from_args(
        C, p.parse_args(["--k", "7", "--names", "x", "y", "--no-on", "--the-mode", "b"]), ["k", "names", "on", "mode"]
    )
    assert got == C(k=7, names=("x", "y"), on=False, mode="b")
    p.print_help()
    assert "units per layer (default: 4)" in capsys.readouterr().out


def test_config_from_dict_round_trips_and_names_unknown_fields():
    from dataclasses import asdict, dataclass

    from circuits.core.config import ConfigError, config_from_dict

    @dataclass(frozen=True)
    class C:
        k: int = 4
        name: str = "x"

    assert config_from_dict(C, asdict(C(k=8))) == C(k=8)
    assert config_from_dict(C, {"name": "y"}) == C(name="y")  # missing keys: defaults
    with pytest.raises(ConfigError, match=r"C: unknown field\(s\) 'depth'; known fields: k, name"):
        config_from_dict(C, {"depth": 2})
    with pytest.raises(ConfigError, match="expected a mapping, got list"):
        config_from_dict(C, [1])
