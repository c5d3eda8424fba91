"""The run report (:mod:`circuits.runs.report`, :mod:`circuits.figures.report_page`) on small hand-made
artifacts with known numbers: the numbers land in the right cells, absent sections say so and name the
command that makes them, the Markdown tables match the artifacts, the page loads nothing from the network,
and bad input is refused naming the file."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from circuits.core.artifacts import InputError
from circuits.figures.report_page import MAKES, fmt, report_html, report_markdown
from circuits.runs import layout
from circuits.runs.report import gather_report, open_run, write_run_report

EMOTIONS = ["anger", "fear"]

SUMMARY = {
    "model": {"name": "toy-model", "fingerprint": "fp1234abcd", "arch": {"n_layers": 2}},
    "dataset": {"path": "data/sev.jsonl", "sha256": "a" * 64, "n_scenarios": 7},
    "config": {"emotions": EMOTIONS},
    "prompts": {"placement": "system", "emotion_system": "Always reply in {emotion}."},
    "rows": {"emotion": 28, "neutral": 14, "accepted": 28, "kept": {"by_emotion": {}}},
    "judge": "lexicon",
}

EVIDENCE = {
    "probe_accuracy": {"attn": [0.5, 0.75], "mlp": [0.625, 0.875]},
    "cosine_by_theme": [[0.125, 0.25], [0.375, 0.5]],
    "cosine_by_valence": [[0.0625, 0.1875], [0.3125, 0.4375]],
    "null": {
        "seeds": 2,
        "method": "labels permuted",
        "chance": 0.5,
        "probe_accuracy": {"mlp": {"mean": [0.375, 0.25], "std": [0.1, 0.1], "seeds": [[0.25, 0.375], [0.5, 0.125]]}},
        "cosine_by_theme": {
            "mean": [[0.0, 0.0], [0.03125, -0.03125]],
            "std": [[0, 0], [0, 0]],
            "seeds": [[[0.0, 0.0], [0.0625, -0.0625]], [[0.0, 0.0], [0.0, 0.0]]],
        },
    },
}


def circuit(emotion: str, neurons: list[list[int]], heads: list[list[int]], faith: float | None) -> dict:
    c = {
        "schema_version": 2,
        "kind": "emotion-circuit",
        "emotion": emotion,
        "model": {"name": "toy-model", "fingerprint": "fp1234abcd", "arch": {"n_layers": 2}},
        "layers": [
            {
                "layer": L,
                "mlp": {"k": len(n), "neurons": n, "scores": [1.0] * len(n)},
                "attention": {"k": len(h), "heads": h, "scores": [1.0] * len(h)},
            }
            for L, (n, h) in enumerate(zip(neurons, heads))
        ],
    }
    if faith is not None:
        c["faithfulness"] = {
            "faithfulness": faith,
            "ablation_loss": 1.25,
            "rows": 4,
            "items": {"split": "test"},
            "random": {
                "faithfulness": {"mean": 0.0625, "std": 0.03125, "seeds": [0.03125, 0.09375]},
                "ablation_loss": {"mean": 0.875},
            },
        }
    return c


EVALUATION = {
    "methods": {
        "prompting": {
            "accuracy": 0.75,
            "per_emotion": {"anger": 1.0, "fear": 0.5},
            "perplexity": 3.25,
            "distinct_2": 0.4375,
            "n": 4,
            "examples": [{"emotion": "anger", "valence": "positive", "reply": "example reply", "judged": "anger"}],
        },
        "circuit": {
            "accuracy": 0.25,
            "per_emotion": {"anger": 0.0, "fear": 0.5},
            "perplexity": 12.5,
            "distinct_2": 0.8125,
            "n": 4,
            "examples": [],
        },
    },
    "config": {"emotions": EMOTIONS},
    "judge": "lexicon-eval",
    "judge_subject": {"reads_through": "toy-model", "is_subject": True},
    "dataset": {"path": "data/sev_test.jsonl", "n_scenarios": 1},
}

REPLIES = [
    {
        "text": "I am furious <b>now</b>",
        "label": "anger",
        "method": "prompting",
        "valence": "negative",
        "verdict": "anger",
    },
    {"text": "grr", "label": "anger", "method": "prompting", "valence": "positive", "verdict": "anger"},
    {"text": "eek", "label": "fear", "method": "prompting", "valence": "negative", "verdict": "fear"},
    {"text": "calm words", "label": "fear", "method": "prompting", "valence": "neutral", "verdict": "neutral"},
    {"text": "flat", "label": "anger", "method": "circuit", "valence": "neutral", "verdict": "neutral"},
    {"text": "scared", "label": "fear", "method": "circuit", "valence": "neutral", "verdict": "fear"},
]


def point(s, acc, score, ppl):
    return {"strength": s, "accuracy": acc, "emotion_score": score, "perplexity": ppl, "n": 4}


DOSE = {
    "reference": {"prompting": point(None, 0.875, 0.5, 2.5), "neutral": point(None, 0.125, 0.0625, 2.25)},
    "methods": {
        "circuit": {
            "points": [point(0.5, 0.25, 0.125, 3.5), point(1.0, 0.625, 0.375, 6.5)],
            "control": [
                dict(
                    point(0.5, 0.125, 0.0625, 3.0),
                    lo={"accuracy": 0.0, "emotion_score": 0.0, "perplexity": 2.75},
                    hi={"accuracy": 0.25, "emotion_score": 0.125, "perplexity": 3.25},
                    seeds=[],
                ),
                dict(
                    point(1.0, 0.1875, 0.0625, 5.0),
                    lo={"accuracy": 0.125, "emotion_score": 0.0, "perplexity": 4.5},
                    hi={"accuracy": 0.25, "emotion_score": 0.125, "perplexity": 5.5},
                    seeds=[],
                ),
            ],
            "match_prompting": {"strength": None, "perplexity": None, "reached": False, "target": 0.875},
        }
    },
    "judge": "lexicon",
    "dev": {"path": "data/sev.jsonl", "n_scenarios": 1, "items_per_point": 4},
    "n_control_seeds": 2,
    "null_seeds": [0, 1],
}

VA_SUMMARY = {
    "model": {"name": "toy-model"},
    "layer": 1,
    "emotions": ["anger", "fear", "joy"],
    "ratings": {"anger": [-0.5, 0.75], "fear": [-0.625, 0.625], "joy": [0.875, 0.5]},
    "projection": {"anger": [-0.25, 0.5], "fear": [-0.375, 0.25], "joy": [0.75, 0.125]},
    "circumplex": {"center": [0.0, 0.125], "radius": 0.5},
    "fit": {"r2": 0.9375, "ridge_alpha": 1.0, "n_components": 2},
    "steering": [
        {
            "direction": "valence",
            "alpha": -2.0,
            "judged": {"anger": 2},
            "valence_proj": -0.125,
            "arousal_proj": 0.25,
            "example": "x",
        },
        {
            "direction": "valence",
            "alpha": 2.0,
            "judged": {"happiness": 2},
            "valence_proj": 0.375,
            "arousal_proj": 0.0625,
            "example": "y",
        },
    ],
}


def write(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj), encoding="utf-8")


@pytest.fixture
def run(tmp_path: Path) -> Path:
    """A run directory with every artifact the report reads."""
    r = tmp_path / "run"
    write(r / layout.SUMMARY_JSON, SUMMARY)
    write(r / layout.EVIDENCE_JSON, EVIDENCE)
    write(r / layout.CIRCUITS_DIR / "anger.json", circuit("anger", [[1, 2, 3], [4]], [[0], [1, 2]], 0.5))
    write(r / layout.CIRCUITS_DIR / "fear.json", circuit("fear", [[1, 2], [5]], [[0], [3]], 0.75))
    write(r / layout.CIRCUITS_DIR / "anger.graph.json", {"not": "a circuit"})
    write(r / layout.EVALUATION_JSON, EVALUATION)
    (r / layout.REPLIES_JSONL).write_text("".join(json.dumps(x) + "\n" for x in REPLIES), encoding="utf-8")
    write(r / "dose" / "dose_response.json", DOSE)
    (r / layout.FIGURES_DIR).mkdir()
    (r / layout.FIGURES_DIR / "probe_accuracy.html").write_text("<html></html>")
    (r / layout.REPORT_MD).write_text("evaluate's report")
    return r


@pytest.fixture
def va_dir(tmp_path: Path) -> Path:
    write(tmp_path / "va" / "summary.json", VA_SUMMARY)
    return tmp_path / "va"


class Tables(HTMLParser):
    """Every ``<table id=...>`` of a page as ``{id: {row key: [cell texts]}}``, headers under ``"#header"``."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, dict[str, list[str]]] = {}
        self.tid = self.key = None
        self.row: list[str] | None = None
        self.cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "table":
            self.tid = a.get("id")
            self.tables[self.tid] = {}
        elif tag == "tr" and self.tid:
            self.key, self.row = a.get("data-key", "#header"), []
        elif tag in ("td", "th") and self.row is not None:
            self.cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self.cell is not None:
            self.row.append("".join(self.cell))
            self.cell = None
        elif tag == "tr" and self.row is not None:
            self.tables[self.tid][self.key] = self.row
            self.row = None
        elif tag == "table":
            self.tid = None

    def handle_data(self, data):
        if self.cell is not None:
            self.cell.append(data)


def tables_of(html: str) -> dict[str, dict[str, list[str]]]:
    p = Tables()
    p.feed(html)
    return p.tables


def md_tables(md: str) -> list[list[list[str]]]:
    """The Markdown tables of ``md`` as lists of rows of cells (separator rows dropped)."""
    out, cur = [], None
    for line in md.splitlines():
        if line.startswith("|"):
            cells = [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
            if all(re.fullmatch(r":?-+:?", c) for c in cells):
                continue
            if cur is None:
                cur = []
                out.append(cur)
            cur.append(cells)
        else:
            cur = None
    return out


def test_numbers_land_in_their_cells(run, va_dir):
    path = write_run_report(run, va_dir=va_dir)
    assert path == run / layout.REPORT_HTML
    t = tables_of(path.read_text(encoding="utf-8"))
    prov = {k: v[1] for k, v in t["table-provenance"].items()}
    assert prov["model"] == "toy-model" and prov["model fingerprint"] == "fp1234abcd"
    assert prov["dataset sha256"] == "a" * 64 and prov["dataset"] == "data/sev.jsonl"
    assert prov["judge (discovery)"] == "lexicon" and prov["judge (evaluation)"] == "lexicon-eval"
    assert prov["evaluation judge reads through"] == "toy-model (the model under study)"
    assert t["table-prompts"]["placement"] == ["placement", "system"]
    # layer 1: probe attn, mlp, null mean, null band (min-max over seeds), cosines, null cosine band
    assert t["table-probe"]["1"] == [
        "1",
        "0.750",
        "0.875",
        "0.250",
        "0.125 to 0.375",
        "0.250",
        "0.500",
        "0.188",
        "0.438",
        "-0.062 to 0.000",
    ]
    assert t["table-units-neurons"]["anger"] == ["anger", "3", "1", "4"]
    assert t["table-units-heads"]["fear"] == ["fear", "1", "1", "2"]
    # neurons {(0,1),(0,2),(0,3),(1,4)} vs {(0,1),(0,2),(1,5)}: 2 / 5; heads {(0,0),(1,1),(1,2)} vs {(0,0),(1,3)}: 1 / 4
    assert t["table-jaccard-neurons"]["anger"] == ["anger", "1.000", "0.400"]
    assert t["table-jaccard-heads"]["fear"] == ["fear", "0.250", "1.000"]
    assert t["table-faithfulness"]["fear"] == [
        "fear",
        "0.750",
        "0.062",
        "0.031",
        "0.031 to 0.094",
        "1.250",
        "0.875",
        "test",
        "4",
    ]
    assert t["table-methods"]["#header"] == ["method", "accuracy", "anger", "fear", "perplexity", "distinct-2", "n"]
    assert t["table-methods"]["prompting"] == ["prompting", "0.750", "1.000", "0.500", "3.250", "0.438", "4"]
    assert t["table-methods"]["circuit"] == ["circuit", "0.250", "0.000", "0.500", "12.500", "0.812", "4"]
    assert t["table-dose"]["circuit@1.000"] == [
        "circuit",
        "1.000",
        "0.625",
        "0.375",
        "6.500",
        "0.188",
        "0.125 to 0.250",
        "5.000",
    ]
    assert t["table-dose"]["prompting"][2] == "0.875"
    assert t["table-va"]["joy"] == ["joy", "0.750", "0.125", "0.875", "0.500"]
    assert t["table-va-steering"]["valence@2.000"] == ["valence", "2.000", "0.375", "0.062", "happiness 2"]


def test_replies_behind_each_cell(run):
    html = write_run_report(run).read_text(encoding="utf-8")
    cells = re.findall(
        r"<details class='cell' data-method='(\w+)' data-emotion='(\w+)'><summary>[^<]*</summary>"
        r"<ol class='replies'>(.*?)</ol>",
        html,
    )
    got = {(m, e): re.findall(r"<span class='reply'>(.*?)</span>", body) for m, e, body in cells}
    assert got == {
        ("prompting", "anger"): ["I am furious &lt;b&gt;now&lt;/b&gt;", "grr"],
        ("prompting", "fear"): ["eek", "calm words"],
        ("circuit", "anger"): ["flat"],
        ("circuit", "fear"): ["scared"],
    }
    assert "prompting</b> (4 replies)" in html and "fear: 2 replies, 1 judged fear" in html
    assert "<b>now</b>" not in html


def test_replies_fall_back_to_the_examples(run):
    (run / layout.REPLIES_JSONL).unlink()
    data = gather_report(run)
    assert data["evaluation"]["replies"] == {
        "prompting": {"anger": [{"text": "example reply", "valence": "positive", "verdict": "anger"}]}
    }
    assert "examples only" in data["evaluation"]["replies_source"]


def test_absent_sections_say_what_makes_them(tmp_path):
    run = tmp_path / "bare"
    write(run / layout.SUMMARY_JSON, {"model": {"name": "m", "fingerprint": "f"}})
    path = write_run_report(run)
    html = path.read_text(encoding="utf-8")
    for section in ("probe", "circuits", "evaluation", "dose", "validity", "va", "views"):
        m = re.search(
            rf"<section id='{section}' class='absent-section'><h2>[^<]*</h2><p class='absent'>(.*?)</p>", html
        )
        assert m, section
        assert "Absent from this run" in m.group(1) and "emocircuits" in m.group(1)
    assert "<section id='provenance' class='present'>" in html
    for missing in ("package versions", "command line", "dataset", "prompt settings"):
        assert f"Not recorded by this run: {missing}." in html
    md = write_run_report(run, fmt="md").read_text(encoding="utf-8")
    assert f"## Dose-response\n\nAbsent from this run. Made by {MAKES['dose']}." in md
    assert "Plotly" not in html  # no figure, no plotly.js


def test_probe_without_null_and_circuits_without_faithfulness(run):
    ev = dict(EVIDENCE)
    del ev["null"]
    write(run / layout.EVIDENCE_JSON, ev)
    for e in EMOTIONS:
        c = json.loads((run / layout.CIRCUITS_DIR / f"{e}.json").read_text())
        del c["faithfulness"]
        write(run / layout.CIRCUITS_DIR / f"{e}.json", c)
    html = write_run_report(run).read_text(encoding="utf-8")
    t = tables_of(html)
    assert t["table-probe"]["#header"] == [
        "layer",
        "probe attn",
        "probe mlp",
        "cosine by theme (attn)",
        "cosine by theme (mlp)",
        "cosine by valence (attn)",
        "cosine by valence (mlp)",
    ]
    assert "table-faithfulness" not in t
    assert "emocircuits nulls --run RUN" in html and "emocircuits faithfulness --run RUN" in html


def test_faithfulness_json_when_the_circuit_files_lack_it(run):
    c = json.loads((run / layout.CIRCUITS_DIR / "fear.json").read_text())
    block = c.pop("faithfulness")
    block["faithfulness"] = 0.3125
    write(run / layout.CIRCUITS_DIR / "fear.json", c)
    write(run / layout.FAITHFULNESS_JSON, {"blocks": {"fear": block}})
    t = tables_of(write_run_report(run).read_text(encoding="utf-8"))
    assert t["table-faithfulness"]["fear"][1] == "0.312"


def test_markdown_tables_match_the_artifacts(run, va_dir):
    path = write_run_report(run, va_dir=va_dir, fmt="md")
    assert path == run / layout.FINDINGS_MD
    assert (run / layout.REPORT_MD).read_text() == "evaluate's report"  # evaluate's report.md is untouched
    md = path.read_text(encoding="utf-8")
    tables = {t[0][0]: t for t in md_tables(md)}
    probe = tables["layer"]
    for L in range(2):
        row = probe[1 + L]
        assert row[:3] == [
            str(L),
            fmt(EVIDENCE["probe_accuracy"]["attn"][L]),
            fmt(EVIDENCE["probe_accuracy"]["mlp"][L]),
        ]
        assert row[3] == fmt(EVIDENCE["null"]["probe_accuracy"]["mlp"]["mean"][L])
    methods = next(t for t in md_tables(md) if t[0][:2] == ["method", "accuracy"])
    assert methods[0] == ["method", "accuracy", "anger", "fear", "perplexity", "distinct-2", "n"]
    for row in methods[1:]:
        m = EVALUATION["methods"][row[0]]
        assert row == [
            row[0],
            fmt(m["accuracy"]),
            *(fmt(m["per_emotion"][e]) for e in EMOTIONS),
            fmt(m["perplexity"]),
            fmt(m["distinct_2"]),
            str(m["n"]),
        ]
    jac = tables["Jaccard (neurons)"]
    assert jac[1] == ["anger", "1.000", "0.400"] and jac[2] == ["fear", "0.400", "1.000"]
    emo = [t for t in md_tables(md) if t[0][0] == "emotion"]
    va = next(t for t in emo if t[0][1] == "valence (projected)")
    assert [r[0] for r in va[1:]] == VA_SUMMARY["emotions"]
    for r in va[1:]:
        assert r[1:] == [fmt(v) for v in VA_SUMMARY["projection"][r[0]] + VA_SUMMARY["ratings"][r[0]]]
    assert "| prompt setting | value |" in md and "Always reply in {emotion}." in md
    assert "<" not in md.replace("<b>now</b>", "")  # tables only: no HTML, no replies
    assert "6 replies behind these cells" in md


def test_page_is_offline_with_plotly_inlined_once(run, va_dir):
    html = write_run_report(run, va_dir=va_dir).read_text(encoding="utf-8")
    assert not re.search(r"""<(script|link|img|iframe)[^>]+(src|href)\s*=\s*["']?(https?:)?//""", html, re.I)
    assert not re.search(r"<script[^>]*\ssrc\s*=", html, re.I)  # every script inline
    assert len(re.findall(r"\* plotly\.js v\d", html)) == 1  # the library once
    n_figs = html.count("Plotly.newPlot(")
    assert n_figs >= 6  # probe, circuits, faithfulness, methods, dose, VA circle + steering
    assert html.index("plotly.js v") < html.index("Plotly.newPlot(")
    toc = re.search(r"<nav class='toc'>(.*?)</nav>", html).group(1)
    for anchor in ("provenance", "probe", "circuits", "evaluation", "dose", "va", "views"):
        assert f"href='#{anchor}'" in toc and f"<section id='{anchor}'" in html


def test_views_link_relative_to_the_page(run, tmp_path):
    out = tmp_path / "elsewhere"
    out.mkdir()
    path = write_run_report(run, out=out)
    assert path == out / layout.REPORT_HTML
    html = path.read_text(encoding="utf-8")
    assert "href='../run/figures/probe_accuracy.html'" in html
    path = write_run_report(run, out=tmp_path / "x" / "page.html")
    assert path.is_file()
    write_run_report(run)
    html = write_run_report(run).read_text(encoding="utf-8")  # a second time: the first report.html exists
    assert "href='figures/probe_accuracy.html'" in html and "href='report.html'" not in html
    md = write_run_report(run, out=tmp_path / "docs" / "findings.md", fmt="md").read_text(encoding="utf-8")
    assert "- `figures/probe_accuracy.html`" in md and "](" not in md  # named, never a link a docs site would break


def test_views_skip_what_a_killed_command_left(run):
    """A staging folder left inside the run (``figures`` or ``evaluate`` killed) holds no views."""
    from circuits.runs.report import views_section

    stale = run / ".figures.abcd1234.partial"
    stale.mkdir()
    (stale / "probe_accuracy.html").write_text("<html></html>")
    titles = [v["title"] for v in views_section(open_run(run), run)]
    assert titles == ["figures/probe_accuracy.html"]


def test_evaluation_in_the_runs_evaluation_folder(run):
    """0.4 on, ``evaluate`` writes into ``RUN/evaluation/``; it wins over a 0.3 run's top-level files."""
    from circuits.runs.layout import EVALUATION_DIR

    new = run / EVALUATION_DIR
    new.mkdir()
    (run / layout.EVALUATION_JSON).rename(new / layout.EVALUATION_JSON)
    (run / layout.REPLIES_JSONL).rename(new / layout.REPLIES_JSONL)
    data = gather_report(run)["evaluation"]
    assert data["replies_source"] == f"{EVALUATION_DIR}/{layout.REPLIES_JSONL}" and data["replies"]
    write(run / layout.EVALUATION_JSON, {"methods": {}})  # a stale top-level file of an older version
    assert gather_report(run)["evaluation"]["methods"] == data["methods"]


def test_dose_response_in_the_run_itself(run):
    (run / "dose" / "dose_response.json").rename(run / "dose_response.json")
    t = tables_of(write_run_report(run).read_text(encoding="utf-8"))
    assert t["table-dose"]["circuit@0.500"][:3] == ["circuit", "0.500", "0.250"]


def test_provenance_shows_recorded_command_and_versions(run):
    write(
        run / layout.SUMMARY_JSON,
        {
            **SUMMARY,
            "argv": ["emocircuits", "discover", "--out", "my run"],
            "versions": {"torch": "2.9.0", "transformer-lens": "4.0.1"},
        },
    )
    t = tables_of(write_run_report(run).read_text(encoding="utf-8"))
    assert t["table-provenance"]["command line"][1] == "emocircuits discover --out 'my run'"
    assert t["table-versions"]["transformer-lens"] == ["transformer-lens", "4.0.1"]


@pytest.mark.parametrize(
    "breakage", ["no_dir", "no_summary", "summary", "evaluation", "replies", "evidence", "circuit", "dose", "va"]
)
def test_bad_input_names_the_file(run, va_dir, breakage):
    target = {
        "summary": run / layout.SUMMARY_JSON,
        "evaluation": run / layout.EVALUATION_JSON,
        "evidence": run / layout.EVIDENCE_JSON,
        "circuit": run / layout.CIRCUITS_DIR / "fear.json",
        "dose": run / "dose" / "dose_response.json",
        "va": va_dir / "summary.json",
    }.get(breakage)
    run_dir = run
    if breakage == "no_dir":
        run_dir, target = run.parent / "missing", run.parent / "missing"
    elif breakage == "no_summary":
        target = run / layout.SUMMARY_JSON
        target.unlink()
    elif breakage == "replies":
        target = run / layout.REPLIES_JSONL
        with target.open("a") as fh:
            fh.write("{broken\n")
    else:
        target.write_text("{not json")
    with pytest.raises(InputError, match=re.escape(str(target))):
        write_run_report(run_dir, va_dir=va_dir)
    assert not (run / layout.REPORT_HTML).exists()


def test_wrong_shape_and_format_are_refused(run, tmp_path):
    write(run / layout.EVALUATION_JSON, {"methods": {"prompting": 3}})
    with pytest.raises(InputError, match=re.escape(str(run / layout.EVALUATION_JSON))):
        write_run_report(run)
    with pytest.raises(InputError, match="format"):
        write_run_report(run, fmt="pdf")
    write(run / layout.EVALUATION_JSON, EVALUATION)
    with pytest.raises(InputError, match=re.escape(str(tmp_path / "nova"))):
        write_run_report(run, va_dir=tmp_path / "nova")


def test_renderer_takes_plain_dicts():
    data = {
        "title": "T <x>",
        "run": "r",
        "provenance": {"model": {"name": "m", "fingerprint": "f"}, "missing": []},
        "evaluation": {
            "methods": {
                "a": {
                    "accuracy": 0.5,
                    "per_emotion": {"joy": 0.25},
                    "perplexity": None,
                    "distinct_2": float("nan"),
                    "n": 2,
                }
            },
            "emotions": ["joy"],
            "replies": {},
            "replies_source": None,
        },
    }
    html = report_html(data)
    assert "<title>T &lt;x&gt;</title>" in html
    assert tables_of(html)["table-methods"]["a"] == ["a", "0.500", "0.250", "-", "-", "2"]
    assert html.count("Plotly.newPlot(") == 1
    md = report_markdown(data)
    assert "| a | 0.500 | 0.250 | - | - | 2 |" in md


def test_the_method_table_leads_with_fluent_accuracy_when_the_check_ran():
    """With the fluency check recorded, the table shows fluent accuracy first, then raw accuracy and the
    broken share; the caption says broken replies are misses."""
    from circuits.figures.report_page import evaluation_tables

    d = {
        "methods": {
            "a": {
                "accuracy": 0.25,
                "raw_accuracy": 0.75,
                "broken_share": 0.5,
                "per_emotion": {"joy": 0.25},
                "perplexity": 4.0,
                "distinct_2": 0.5,
                "n": 4,
            }
        },
        "emotions": ["joy"],
        "judge": "learned",
        "fluency": {"rule": {}, "reference": "smollm2-135m"},
    }
    (t,) = evaluation_tables(d)
    assert t.header[:4] == ["method", "fluent accuracy", "raw accuracy", "broken"]
    assert t.rows[0][:5] == ["a", "0.250", "0.750", "0.500", "0.250"]
    assert "counted as misses" in t.caption
    (old,) = evaluation_tables({k: v for k, v in d.items() if k != "fluency"})
    assert old.header[:2] == ["method", "accuracy"] and "raw" in old.caption


def test_a_run_named_by_a_relative_path_reads_the_same(run, monkeypatch):
    """`emocircuits report --run runs/x` (relative, as users type it) gathers every section the absolute
    path gathers: circuits and dose-response files are found under the run, not under the run twice."""
    from circuits.runs.report import gather_report

    full = gather_report(run)
    monkeypatch.chdir(run.parent)
    rel = gather_report(run.name)
    for key in ("probe", "circuits", "evaluation", "dose"):
        assert rel[key] is not None, key
    assert rel["circuits"] == full["circuits"]
    assert {k: v for k, v in rel["dose"].items() if k != "file"} == {
        k: v for k, v in full["dose"].items() if k != "file"
    }


def test_dose_and_va_sections_name_the_command_that_made_them(run):
    """dose_response.json and a VA summary.json record their command line (core.provenance); both the page
    and the Markdown name it under the section, and say nothing of it where none was recorded."""
    from circuits.figures.report_page import report_markdown
    from circuits.runs.report import gather_report

    dose = json.loads((run / "dose" / "dose_response.json").read_text())
    assert "command" not in dose
    assert "Made by `emocircuits dose-response" not in report_markdown(gather_report(run))
    dose["command"] = ["emocircuits", "dose-response", "--run", "runs/x", "--out", "runs/x/dose"]
    write(run / "dose" / "dose_response.json", dose)
    md = report_markdown(gather_report(run))
    assert "Made by `emocircuits dose-response --run runs/x --out runs/x/dose`." in md
    assert "Made by <code>emocircuits dose-response --run runs/x --out runs/x/dose</code>" in write_run_report(
        run
    ).read_text(encoding="utf-8")


def test_the_dose_table_names_fluent_accuracy_when_the_points_have_it():
    from circuits.figures.report_page import dose_tables

    point = {"strength": 1.0, "accuracy": 0.5, "emotion_score": 0.4, "perplexity": 3.0}
    band = {"strength": 1.0, "accuracy": 0.1, "perplexity": 3.0, "lo": {"accuracy": 0.0}, "hi": {"accuracy": 0.2}}
    d = {"methods": {"circuit": {"points": [point], "control": [band]}}, "reference": {}}
    assert dose_tables(d)[0].header[2] == "accuracy"
    d["methods"]["circuit"]["points"] = [point | {"broken_share": 0.25, "raw_accuracy": 0.75}]
    (table, *_) = dose_tables(d)
    assert table.header[2] == "fluent accuracy" and "broken replies count as misses" in table.caption
