"""Every HTML page the workbench writes, opened in a real browser (Playwright on the system Chromium), offline.

A small toy run is made once for the module (``discover`` with small flags, a one-scenario ``evaluate``, a
two-point ``dose-response``, ``atlas``, ``trace``, ``export-graph``, ``judge eval --figure`` of the lexicon
judges, then the run report); each page is opened with every request that is not ``file:`` or ``data:`` blocked and recorded. A page fails on a
console error, a page error, a blocked request, or a plotly figure that drew nothing (no ``.main-svg`` of
non-zero size holding a trace).

Needs ``pip install playwright`` (the browser is the Debian one: ``apt-get install -y chromium`` as root;
``playwright install`` is not needed). Skipped with that message when either is missing.
``EMOCIRCUITS_SCREENSHOT_DIR``: where to save ``report.png`` (a full-page screenshot of ``report.html``).
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

INSTALL = (
    "needs Playwright for Python and a system Chromium: `pip install playwright` into the venv and "
    "`apt-get install -y chromium` as root (no `playwright install` needed)"
)

EMOTIONS = ("anger", "happiness", "sadness")

# what a plotly figure that drew something holds: a sized svg with at least one trace (scatter / bar
# groups, heatmap images)
_PLOT_CHECK = """() => Array.from(document.querySelectorAll('.js-plotly-plot')).map((el, i) => {
  const svg = el.querySelector('svg.main-svg');
  const r = svg ? svg.getBoundingClientRect() : null;
  const traces = el.querySelectorAll('.main-svg g.trace, .main-svg g.hm image, .main-svg g.hm, .main-svg path.point');
  return {index: i, id: el.id, svg: !!svg, width: r ? r.width : 0, height: r ? r.height : 0,
          traces: traces.length};
})"""


def _browser_or_skip():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip(f"playwright is not installed: {INSTALL}")
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        pytest.skip(f"no chromium on PATH: {INSTALL}")
    return sync_playwright, exe


def _cli(*argv: str) -> None:
    from circuits.cli import main

    rc = main(list(argv))
    assert rc == 0, f"emocircuits {' '.join(argv)} exited with {rc}"


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory) -> Path:
    """A small toy run with every HTML view: figures/, evaluation/accuracy.html, dose_response.html, atlas.html, a trace
    page, the export-graph circuit views and report.html."""
    _browser_or_skip()  # no run to make when there is no browser to open it
    from circuits.runs.report import write_run_report

    run = tmp_path_factory.mktemp("browser") / "run"
    model = ("--model", "toy")
    t0 = time.perf_counter()
    _cli(
        "discover",
        *model,
        "--out",
        str(run),
        "--limit",
        "2",
        "--emotions",
        *EMOTIONS,
        "--reference-budget",
        "0",
        "--sweep-ks",
        "1",
        "--sweep-seeds",
        "1",
        "--sweep-rows",
        "2",
        "--sweep-layer-count",
        "1",
        "--generation-rows",
        "0",
        "--null-seeds",
        "1",
        "--faithfulness-rows",
        "2",
        "--faithfulness-seeds",
        "2",
        "--faithfulness-judge-rows",
        "0",
    )
    _cli("evaluate", *model, "--run", str(run), "--limit", "1", "--emotions", *EMOTIONS)
    _cli(
        "dose-response",
        *model,
        "--run",
        str(run),
        "--methods",
        "circuit",
        "--emotions",
        *EMOTIONS,
        "--sweep-limit",
        "1",
        "--circuit-lambdas",
        "0.5",
        "1",
        "--null-seeds",
        "0",
        "1",
    )
    _cli("atlas", *model, "--run", str(run))
    _cli("trace", *model, "--run", str(run), "--text", "I am so angry about this.", "--out", str(run / "trace.html"))
    _cli("export-graph", *model, "--run", str(run))
    _cli("judge", "eval", "--judge", "style", "--judge", "lexicon", "--split", "final", "--figure", str(run / "judge"))
    write_run_report(run, va_dir=va_run(run.parent / "va"))
    print(f"toy run for the browser test made in {time.perf_counter() - t0:.1f}s: {run}")
    return run


def va_run(out: Path) -> Path:
    """A VA run directory: a summary in the shape ``emocircuits va`` writes (small numbers, no model: a real
    ``va`` run would double the test's time) and its figures, drawn by the workbench's own VA figure code."""
    import json

    from circuits.figures.va import va_figures

    emotions = ("anger", "fear", "happiness", "sadness")
    proj = {"anger": [-0.6, 0.7], "fear": [-0.7, 0.5], "happiness": [0.8, 0.4], "sadness": [-0.5, -0.6]}
    summary = {
        "model": {"name": "toy"},
        "layer": 2,
        "emotions": list(emotions),
        "projection": proj,
        "ratings": {"anger": [2.2, 7.4], "fear": [2.1, 7.8], "happiness": [8.4, 6.2], "sadness": [2.0, 3.0]},
        "circumplex": {"center": [0.0, 0.1], "radius": 0.85, "residual": 0.1},
        "fit": {"r2": {"valence": 0.9, "arousal": 0.4}},
        "steering": [
            {
                "direction": d,
                "alpha": a,
                "judged": {"neutral": 3},
                "valence_proj": 0.1 * a + i,
                "arousal_proj": -0.05 * a,
                "example": "",
            }
            for i, d in enumerate(("valence", "arousal", "random0"))
            for a in (-2.0, 0.0, 2.0)
        ],
    }
    out.mkdir(parents=True, exist_ok=True)
    va_figures(out, summary)
    (out / "summary.json").write_text(json.dumps(summary), encoding="utf-8")
    return out


@pytest.fixture(scope="module")
def browser():
    sync_playwright, exe = _browser_or_skip()
    with sync_playwright() as p:
        try:
            b = p.chromium.launch(executable_path=exe, args=["--no-sandbox"])
        except Exception as e:  # a Chromium that cannot start here (no display libraries, ...)
            pytest.skip(f"chromium at {exe} does not start ({e}): {INSTALL}")
        yield b
        b.close()


def open_offline(browser, path: Path, screenshot: Path | None = None) -> tuple[list[str], list[dict]]:
    """Open ``path`` with every request that is not file: or data: blocked; the problems (console errors,
    page errors, blocked requests, empty plotly figures) and the figures' check records."""
    problems: list[str] = []
    context = browser.new_context(viewport={"width": 1280, "height": 900})

    def route(r):
        url = r.request.url
        if url.startswith(("file:", "data:")):
            r.continue_()
        else:
            problems.append(f"network request: {url}")
            r.abort()

    context.route("**/*", route)
    page = context.new_page()
    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("request", lambda r: None if r.url.startswith(("file:", "data:")) else problems.append(f"request: {r.url}"))
    try:
        page.goto(path.resolve().as_uri(), wait_until="load")
        html = path.read_text(encoding="utf-8")
        expect_plots = "Plotly.newPlot" in html
        if expect_plots:
            try:  # plotly draws synchronously after load in most pages; give slow machines a moment
                page.wait_for_function(
                    "() => { const p = document.querySelectorAll('.js-plotly-plot');"
                    " return p.length > 0 && Array.from(p).every(e => e.querySelector("
                    "'svg.main-svg')); }",
                    timeout=20000,
                )
            except Exception:
                problems.append("plotly figures did not all draw within 20 s")
        plots = page.evaluate(_PLOT_CHECK)
        if expect_plots and not plots:
            problems.append("the page calls Plotly.newPlot but holds no .js-plotly-plot")
        for f in plots:
            if not f["svg"] or f["width"] <= 0 or f["height"] <= 0 or f["traces"] == 0:
                problems.append(f"plotly figure {f['index']} ({f['id']}) drew nothing: {f}")
        if screenshot is not None:
            screenshot.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(screenshot), full_page=True)
    finally:
        context.close()
    return problems, plots


def html_views(run: Path) -> list[Path]:
    """The run's HTML pages and those of the VA run beside it."""
    pages = [p for p in run.rglob("*.html") if "store" not in p.relative_to(run).parts]
    return sorted(pages) + sorted((run.parent / "va").rglob("*.html"))


def test_toy_run_writes_every_view(toy_run):
    names = {p.relative_to(toy_run).as_posix() for p in html_views(toy_run) if toy_run in p.parents}
    for expected in (
        "report.html",
        "evaluation/accuracy.html",
        "atlas.html",
        "trace.html",
        "dose_response.html",
        "figures/probe_accuracy.html",
        "judge/reliability.html",
        *(f"circuits/{e}.html" for e in EMOTIONS),
    ):
        assert expected in names, f"{expected} not written; have {sorted(names)}"
    assert sum(n.startswith("figures/") for n in names) >= 5
    assert (toy_run.parent / "va" / "figures" / "va_circle.html").is_file()


def test_report_page_in_browser(toy_run, browser):
    shots = os.environ.get("EMOCIRCUITS_SCREENSHOT_DIR")
    problems, plots = open_offline(browser, toy_run / "report.html", Path(shots) / "report.png" if shots else None)
    assert not problems, "report.html:\n" + "\n".join(problems)
    # probe, circuits, faithfulness, methods, dose-response, VA circle and steering: every figure drew
    assert len(plots) >= 7, plots
    html = (toy_run / "report.html").read_text(encoding="utf-8")
    assert html.count("Plotly.newPlot") == len(plots)
    for section in ("provenance", "probe", "circuits", "evaluation", "dose", "va", "views"):
        assert f"<section id='{section}' class='present'>" in html, section
    if shots:
        assert (Path(shots) / "report.png").stat().st_size > 10_000


def test_every_html_view_offline(toy_run, browser):
    failures = {}
    pages = html_views(toy_run)
    for path in pages:
        problems, _ = open_offline(browser, path)
        if problems:
            failures[path.relative_to(toy_run.parent).as_posix()] = problems
    assert not failures, "\n".join(f"{k}:\n  " + "\n  ".join(v) for k, v in failures.items())
    assert len(pages) >= 10
