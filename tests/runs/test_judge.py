"""`emocircuits judge eval / label / cv / train` on small hand-made files."""

from __future__ import annotations

import json
import re

import pytest

from circuits.cli import main
from circuits.core.emotions import LABELS, NEUTRAL

ROWS = [
    ("How dare they cancel it without a word?", "anger"),
    ("Who do they think they are, ignoring every letter?", "anger"),
    ("Ugh, the sticky carpet is revolting.", "disgust"),
    ("Ew, that sleazy landlord makes my skin crawl.", "disgust"),
    ("Oh no, what if they never call back? What if I lose it?", "fear"),
    ("I'm terrified the scan will show something worse.", "fear"),
    ("Alas, the flat is gone, and with it the last hope.", "sadness"),
    ("It hurts. I really wished it would work out.", "sadness"),
    ("Yay! That is wonderful news!", "happiness"),
    ("I'm thrilled for you, what a lovely result!", "happiness"),
    ("Wait, what? They gave you the whole floor?", "surprise"),
    ("Whoa, I never expected them to say yes!", "surprise"),
    ("You can ask the office for a copy of the form.", "calm"),
    ("The next bus leaves at nine; the ticket costs four euros.", "calm"),
]


@pytest.fixture()
def labelled(tmp_path):
    path = tmp_path / "replies.jsonl"
    path.write_text(
        "".join(
            json.dumps({"text": t, "label": lab, "split": "dev" if i % 2 == 0 else "final"}) + "\n"
            for i, (t, lab) in enumerate(ROWS * 2)
        )
    )
    return path


def test_eval_prints_confusion_recall_and_kappa(labelled, tmp_path, capsys):
    out = tmp_path / "metrics.json"
    assert main(["judge", "eval", str(labelled), "--judge", "style", "--judge", "lexicon", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "truth \\ verdict" in text and "recall  precision" in text
    assert "Cohen's kappa between judges" in text and "style vs lexicon" in text
    assert "match mode" in text
    report = json.loads(out.read_text())
    assert report["n"] == len(ROWS) * 2 and set(report["judges"]) == {"style", "lexicon"}
    m = report["judges"]["style"]["labels"]
    assert sum(map(sum, m["confusion"])) == len(ROWS) * 2
    assert -1 <= report["kappa"]["style vs lexicon"] <= 1
    # the split filter
    assert main(["judge", "eval", str(labelled), "--judge", "style", "--split", "final", "--json", str(out)]) == 0
    assert json.loads(out.read_text())["n"] == len(ROWS)


def test_eval_reports_calibration_and_draws_the_reliability_figure(labelled, tmp_path, capsys):
    """ECE of both readings per judge, equal to a direct recomputation from the judge's probabilities,
    and the figure: one curve per judge and panel, the diagonal in each."""
    from circuits.judges.base import make_judge
    from circuits.judges.calibrate import read_labelled
    from circuits.judges.training import reply_texts

    out, fig = tmp_path / "metrics.json", tmp_path / "fig"
    argv = ["judge", "eval", str(labelled), "--judge", "style", "--judge", "lexicon", "--json", str(out)]
    assert main([*argv, "--figure", str(fig)]) == 0
    text = capsys.readouterr().out
    assert "expected calibration error" in text and "reliability.html" in text
    report = json.loads(out.read_text())
    rows = read_labelled(labelled)
    for name in ("style", "lexicon"):
        probs = make_judge(name).probabilities(reply_texts(rows))
        conf = [max(p.values()) for p in probs]
        hit = [max(p, key=p.get) == r.label for p, r in zip(probs, rows)]
        slow = 0.0
        for b in range(10):  # the slow way: every bin's members by comparison
            members = [i for i, c in enumerate(conf) if b / 10 <= c < (b + 1) / 10 or (b == 9 and c == 1.0)]
            if members:
                gap = sum(hit[i] for i in members) / len(members) - sum(conf[i] for i in members) / len(members)
                slow += len(members) / len(rows) * abs(gap)
        rel = report["judges"][name]["reliability"]
        assert rel["label"]["ece"] == pytest.approx(slow, abs=1e-12)
        assert rel["match"]["n"] == 6 * len(rows) and sum(b["n"] for b in rel["match"]["bins"]) == 6 * len(rows)
    html = (fig / "reliability.html").read_text(encoding="utf-8")
    assert "Plotly.newPlot" in html and not re.search(r"<script[^>]*\ssrc\s*=", html, re.I)  # inline
    for name in ("style", "lexicon"):  # one legend entry per judge, both errors in it
        rel = report["judges"][name]["reliability"]
        entry = f"{name}: ECE {rel['label']['ece']:.3f} (verdict), {rel['match']['ece']:.3f} (match)"
        assert html.count(entry) == 2  # the trace of each panel carries it; the second hides its legend
    # a path that is a file is refused before any judge runs
    assert main([*argv, "--figure", str(out)]) == 2


def test_eval_markdown_page_states_n_intervals_and_the_command(labelled, tmp_path):
    from circuits.core.stats import wilson_interval

    out, page = tmp_path / "m.json", tmp_path / "judges.md"
    argv = ["judge", "eval", str(labelled), "--judge", "style", "--by", "split", "--json", str(out)]
    assert main([*argv, "--markdown", str(page), "--title", "# Judges"]) == 0
    text, report = page.read_text(encoding="utf-8"), json.loads(out.read_text())
    assert text.startswith("# Judges\n\nGenerated by `emocircuits judge eval ") and "--markdown" in text
    assert f"{len(ROWS) * 2} replies, 24 emotional and 4 calm" in text
    m = report["judges"]["style"]["labels"]
    hits = round(m["emotion_accuracy"] * 24)
    low, high = wilson_interval(hits, 24)
    assert f"| style | - | {hits / 24:.1%} [{low:.1%}, {high:.1%}] |" in text
    assert text.count("| dev | style | 14 |") == 1 and text.count("| final | style | 14 |") == 1


def test_label_writes_one_verdict_per_row_and_flags_echoes(tmp_path, capsys):
    src = tmp_path / "in.jsonl"
    src.write_text(
        json.dumps({"text": "Yay! Wonderful!"})
        + "\n"
        + json.dumps({"text": "Clearly shows disgust.", "instruction": "Answer in a way that clearly shows disgust."})
        + "\n"
    )
    out = tmp_path / "out.jsonl"
    assert main(["judge", "label", str(src), "--judge", "style", "--out", str(out)]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["verdict"] for r in rows] == ["happiness", NEUTRAL]
    assert rows[1]["echo_removed"] and "echo_removed" not in rows[0]
    assert set(rows[0]["scores"]) == set(LABELS)
    assert main(["judge", "label", str(src), "--judge", "style"]) == 0  # to stdout
    assert capsys.readouterr().out.count('"verdict"') == 2


def test_train_writes_a_judge_that_loads_by_folder(labelled, tmp_path, capsys):
    folder = tmp_path / "myjudge"
    assert (
        main(
            [
                "judge",
                "train",
                str(labelled),
                "--split",
                "",
                "--features",
                "style",
                "--folds",
                "2",
                "--out",
                str(folder),
            ]
        )
        == 0
    )
    assert "match threshold" in capsys.readouterr().out
    cfg = json.loads((folder / "cfg.json").read_text())
    assert cfg["features"] == "style" and cfg["trained_on"]["n"] == len(ROWS) * 2
    assert cfg["trained_on"]["per_label"]["neutral"] == 4 and len(cfg["trained_on"]["sha256"]) == 16
    assert main(["judge", "eval", str(labelled), "--judge", f"learned:{folder}"]) == 0
    assert f"judge learned:{folder}" in capsys.readouterr().out


def test_cv_compares_heads_with_the_lexicon_judges(labelled, capsys, tmp_path):
    page = tmp_path / "cv.md"
    argv = ["judge", "cv", str(labelled), "--split", "", "--features", "style", "--l2", "0.1", "--folds", "2"]
    assert main([*argv, "--markdown", str(page)]) == 0
    text = capsys.readouterr().out
    assert "head style l2=0.1" in text and "\nlexicon " in text and "\nstyle " in text
    md = page.read_text(encoding="utf-8")
    assert md.startswith("Generated by `emocircuits judge cv ") and f"split all, {len(ROWS) * 2} replies" in md
    row = next(line for line in text.splitlines() if line.startswith("head style l2=0.1"))
    emotional = row.split()[3]  # the printed table's emotional accuracy is the page's
    assert f"| head style l2=0.1 | {emotional} |" in md


def test_bad_file_is_a_clear_error(tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "x", "label": "joy"}\n')
    assert main(["judge", "eval", str(bad), "--judge", "style"]) != 0
    err = capsys.readouterr().err
    assert str(bad) in err and "line 1" in err


def test_eval_by_field_gives_each_group_its_accuracy(tmp_path, capsys):
    """`--by method`: per group, the share of rows whose verdict is their label, for every judge."""
    from circuits.judges.calibrate import grouped_accuracy, read_labelled

    path = tmp_path / "replies.jsonl"
    rows = [
        ("Yay! That is wonderful news!", "happiness", "a"),
        ("The bus leaves at nine.", "happiness", "a"),
        ("I'm terrified the scan will show something worse.", "fear", "b"),
        ("I'm terrified of the dark.", "fear", "b"),
        ("The form is on the desk.", "fear", "b"),
    ]
    path.write_text("".join(json.dumps({"text": t, "label": lab, "method": m}) + "\n" for t, lab, m in rows))
    read = read_labelled(path, group_by="method")
    by = grouped_accuracy(read, ["happiness", "neutral", "fear", "fear", "neutral"])
    assert by == {
        "a": {"n": 2, "accuracy": 0.5, "per_label": {"happiness": 0.5}},
        "b": {"n": 3, "accuracy": 2 / 3, "per_label": {"fear": 2 / 3}},
    }
    out = tmp_path / "m.json"
    assert main(["judge", "eval", str(path), "--judge", "lexicon", "--by", "method", "--json", str(out)]) == 0
    assert "accuracy by method" in capsys.readouterr().out
    got = json.loads(out.read_text())["by"]["judges"]["lexicon"]
    assert got["a"]["n"] == 2 and got["b"]["n"] == 3
    assert main(["judge", "eval", str(path), "--judge", "lexicon", "--by", "emotion"]) != 0
    assert "no field 'emotion'" in capsys.readouterr().err
