"""Saving a plotly figure: HTML always, PNG through kaleido (with a browser) or matplotlib, written atomically."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from circuits.core.artifacts import write_atomic, write_text_atomic

COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f")
"""The qualitative palette (plotly's first eight) every multi-series figure cycles through."""


def _browser_available() -> bool:
    """kaleido >= 1 renders through a Chrome/Chromium; without one ``write_image`` can hang."""
    import shutil

    return any(shutil.which(b) for b in ("google-chrome", "chromium", "chromium-browser", "chrome"))


def _axis_index(name: str) -> int:
    return int(name[1:]) if len(name) > 1 else 1


def _mpl_cmap(colorscale: Any) -> Any:
    """A matplotlib colormap from a plotly colorscale (``((pos, 'rgb(r,g,b)' or '#hex'), ...)``), so a
    PNG keeps the HTML's colours; viridis when the trace left the colorscale to the template."""
    if not colorscale:
        return "viridis"
    from matplotlib.colors import LinearSegmentedColormap, to_rgb

    stops = []
    for pos, col in colorscale:
        col = str(col).strip()
        if col.startswith("rgb"):
            rgb = tuple(float(v) / 255 for v in col[col.index("(") + 1 : col.index(")")].split(",")[:3])
        else:
            rgb = to_rgb(col)
        stops.append((float(pos), rgb))
    return LinearSegmentedColormap.from_list("plotly", stops)


def _subplot_grid(fig: Any) -> tuple[int, int, dict[int, tuple[int, int]]]:
    """(rows, cols, axis index -> (row, col)) from the axes' domains (make_subplots layouts)."""
    layout = fig.layout.to_plotly_json()
    idx = {_axis_index(getattr(t, "xaxis", None) or "x") for t in fig.data} | {1}
    idx |= {_axis_index("x" + k[5:]) for k in layout if k.startswith("xaxis")}
    starts = {}
    for i in sorted(idx):
        xd = (layout.get("xaxis" if i == 1 else f"xaxis{i}") or {}).get("domain") or (0, 1)
        yd = (layout.get("yaxis" if i == 1 else f"yaxis{i}") or {}).get("domain") or (0, 1)
        starts[i] = (round(float(xd[0]), 3), round(float(yd[0]), 3))
    cols = sorted({x for x, _ in starts.values()})
    rows = sorted({y for _, y in starts.values()}, reverse=True)
    return len(rows), len(cols), {i: (rows.index(y), cols.index(x)) for i, (x, y) in starts.items()}


def _draw_heatmap(ax: Any, t: Any, reversed_y: bool) -> Any:
    z = np.asarray(t.z, dtype=float)
    vmin, vmax = t.zmin, t.zmax
    if (vmin is None or vmax is None) and t.zmid is not None:
        half = float(np.nanmax(np.abs(z - t.zmid))) or 1.0
        vmin, vmax = t.zmid - half, t.zmid + half
    cmap = _mpl_cmap(t.colorscale)
    if cmap == "viridis" and t.zmid is not None:
        cmap = "RdBu_r"
    # plotly draws the first row at the bottom unless the y axis is reversed
    im = ax.imshow(
        z,
        aspect="auto",
        cmap=cmap,
        vmin=vmin,
        vmax=vmax,
        origin="upper" if reversed_y else "lower",
        interpolation="nearest",
    )
    if t.y is not None:
        ax.set_yticks(range(len(t.y)), list(t.y))
    if t.x is not None and len(t.x) <= 24:
        ax.set_xticks(range(len(t.x)), list(t.x), rotation=90)
    if t.text is not None and z.size <= 800:
        text = np.asarray(t.text, dtype=object)
        size = 7 if z.shape[1] <= 16 else 5
        for (r, c), s in np.ndenumerate(text):
            if s is None or s == "" or not np.isfinite(z[r, c]):
                continue
            rgba = im.cmap(im.norm(z[r, c]))
            dark = 0.299 * rgba[0] + 0.587 * rgba[1] + 0.114 * rgba[2] < 0.5
            ax.text(c, r, str(s), ha="center", va="center", fontsize=size, color="white" if dark else "black")
    return im


def plotly_to_png(fig: Any, path: Path, width: float = 9.0, height: float = 5.0) -> bool:
    """Render the scatter / bar / heatmap traces of a plotly figure with matplotlib (a static copy
    for READMEs when no browser is available for kaleido): subplot grids, heatmap colour scales and
    cell text as in the HTML. Returns False if matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    n_rows, n_cols, where = _subplot_grid(fig)
    # heatmaps that hide their scale share the first one's colour bar (one bar for all of them)
    shared_scale = any(t.type == "heatmap" and t.showscale is False for t in fig.data)
    figure, grid = plt.subplots(
        n_rows, n_cols, figsize=(width, height), squeeze=False, layout="constrained" if shared_scale else None
    )
    axes = {i: grid[r][c] for i, (r, c) in where.items()}
    titles = [a.text for a in (fig.layout.annotations or [])]
    bars: dict[int, int] = {}
    heat: list[tuple[Any, Any, bool]] = []
    for t in fig.data:
        i = _axis_index(getattr(t, "xaxis", None) or "x")
        ax = axes[i]
        label = t.name if getattr(t, "showlegend", None) is not False else None
        if t.type == "heatmap":
            ya = fig.layout["yaxis" if i == 1 else f"yaxis{i}"]
            heat.append(
                (ax, _draw_heatmap(ax, t, ya is not None and ya.autorange == "reversed"), t.showscale is not False)
            )
        elif t.type == "bar":
            y = np.asarray(t.y, dtype=float)
            x = np.arange(len(y)) if t.x is None else np.arange(len(t.x))
            k = bars.get(id(ax), 0)
            bars[id(ax)] = k + 1
            ax.bar(x + 0.12 * k, y, width=0.12, label=label)
            if t.x is not None:
                ax.set_xticks(x, list(t.x), rotation=30)
        else:
            y = np.asarray(t.y, dtype=float)
            x = np.arange(len(y)) if t.x is None else np.asarray(t.x, dtype=float)
            mode = t.mode or "lines"
            line = getattr(t, "line", None)
            dash = getattr(line, "dash", None)
            color = getattr(line, "color", None) or None
            ls = ":" if dash in ("dot", "dash") else "-"
            if t.fill == "toself":  # a band (figures.discovery.add_band): a filled polygon, as in the HTML
                ax.fill(
                    x,
                    y,
                    alpha=t.opacity if t.opacity is not None else 0.25,
                    color=t.fillcolor or color,
                    linewidth=0,
                    label=label,
                )
            elif "lines" in mode:
                ax.plot(x, y, ls, marker="o" if "markers" in mode else None, ms=3, label=label, color=color)
            else:
                ax.scatter(x, y, s=6, label=label, color=color)
    for k, i in enumerate(sorted(axes)):
        ax = axes[i]
        if k < len(titles):
            ax.set_title(titles[k], fontsize=9)
        xa = fig.layout["xaxis" if i == 1 else f"xaxis{i}"]
        if xa is not None and xa.type == "log":
            ax.set_xscale("log")
        ya = fig.layout["yaxis" if i == 1 else f"yaxis{i}"]
        if ya is not None and ya.type == "log":
            ax.set_yscale("log")
        for a, set_label in ((xa, ax.set_xlabel), (ya, ax.set_ylabel)):
            if a is not None and a.title is not None and a.title.text:
                set_label(a.title.text, fontsize=8)
        if (
            ya is not None
            and ya.range is not None
            and not any(t.type == "heatmap" for t in fig.data if _axis_index(getattr(t, "xaxis", None) or "x") == i)
        ):
            ax.set_ylim(*ya.range)
    if shared_scale and any(show for _, _, show in heat):
        figure.colorbar(next(im for _, im, show in heat if show), ax=[ax for ax, _, _ in heat])
    else:
        for ax, im, _ in heat:
            figure.colorbar(im, ax=ax)
    handles: dict[str, Any] = {}
    for ax in axes.values():
        for h, lab in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(lab, h)
    if handles:
        axes[max(axes)].legend(list(handles.values()), list(handles), fontsize=7, loc="best")
    figure.suptitle(fig.layout.title.text or "", fontsize=10)
    if not shared_scale:
        figure.tight_layout()
    try:
        write_atomic(path, lambda p: figure.savefig(p, dpi=100, format="png"))
    finally:
        plt.close(figure)
    return True


def plotly_html(fig: Any, full_html: bool = True) -> str:
    """``fig`` as HTML that works offline: plotly.js inlined once (never loaded from a CDN). With
    ``full_html=False`` a ``<div>`` to embed in a page that holds no other plotly figure."""
    return fig.to_html(include_plotlyjs=True, full_html=full_html)


def save_figure(fig: Any, out: Path, name: str, width: int = 900, height: int = 520) -> list[str]:
    """HTML always (offline: plotly inlined); PNG with kaleido when a browser is present, else with
    matplotlib if installed."""
    paths = []
    html = out / f"{name}.html"
    write_text_atomic(html, plotly_html(fig))
    paths.append(str(html))
    png = out / f"{name}.png"
    done = False
    if _browser_available():
        try:
            write_atomic(png, lambda p: fig.write_image(str(p), format="png", width=width, height=height, scale=1))
            done = True
        except Exception:
            done = False
    if not done:
        done = plotly_to_png(fig, png, width=width / 100, height=height / 100)
    if done:
        paths.append(str(png))
    return paths
