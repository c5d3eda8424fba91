"""`emocircuits prompts`: prompted accuracy per placement and wording."""

from __future__ import annotations

import json

from circuits.runs.prompts import candidate_prompts


def test_candidates_cover_every_placement():
    names = [n for n, _ in candidate_prompts(("A {emotion}.", "B {emotion}."))]
    assert names == ["system: paper", "user before: w1", "user before: w2", "user after: w1", "both: paper + w1"]
    placements = {s.placement for _, s in candidate_prompts()}
    assert placements == {"system", "user", "both"}


def test_prompts_command_on_the_toy_model(tmp_path, capsys):
    """The toy model was trained with the emotion in the system prompt: that candidate scores high and
    its replies differ between emotions; every accuracy is the mean of the per-emotion ones."""
    from circuits.cli import main

    out, replies = tmp_path / "prompts.json", tmp_path / "replies.jsonl"
    assert (
        main(
            [
                "prompts",
                "--model",
                "toy",
                "--limit",
                "1",
                "--emotions",
                "anger",
                "fear",
                "--wordings",
                "Show {emotion}.",
                "--out",
                str(out),
                "--replies",
                str(replies),
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "system: paper" in printed and "user before: w1" in printed and "w1: 'Show {emotion}.'" in printed
    rows = {r["name"]: r for r in json.loads(out.read_text())["candidates"]}
    assert set(rows) == {"system: paper", "user before: w1", "user after: w1", "both: paper + w1"}
    assert all(r["n"] == 1 * 3 * 2 for r in rows.values())
    assert rows["system: paper"]["accuracy"] >= 0.8
    assert rows["system: paper"]["same_for_all_emotions"] == 0.0
    for r in rows.values():
        assert r["accuracy"] == sum(r["per_emotion"].values()) / 2 and r["echo_only"] == 0.0
    assert rows["user before: w1"]["settings"]["placement"] == "user"

    # every reply is written; re-judged with the same judge (lexicon: the toy model's default) by
    # `judge eval --by candidate`, each candidate's accuracy comes back exactly
    recorded = [json.loads(line) for line in replies.read_text().splitlines()]
    assert len(recorded) == 4 * 6 and {r["candidate"] for r in recorded} == set(rows)
    metrics = tmp_path / "metrics.json"
    assert main(["judge", "eval", str(replies), "--judge", "lexicon", "--by", "candidate", "--json", str(metrics)]) == 0
    assert "accuracy by candidate" in capsys.readouterr().out
    by = json.loads(metrics.read_text())["by"]["judges"]["lexicon"]
    for name, r in rows.items():
        assert by[name]["n"] == 6 and by[name]["accuracy"] == r["accuracy"]
        assert by[name]["per_label"] == r["per_emotion"]
