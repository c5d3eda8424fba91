"""A circuit for viewers: a node-link graph JSON with readable node labels, and a self-contained HTML view.

:func:`node_link_graph` writes the layout networkx reads with ``node_link_graph(data, edges="links")``
(and that d3-style viewers take): ``{"directed", "multigraph", "graph", "nodes", "links"}``. Nodes:
``input``, one per circuit head (``a{L}.h{H}``) and neuron (``m{L}.n{N}``), ``logits``; each with
``layer``, ``kind`` (``head`` / ``neuron``), ``index``, ``emotion``, ``score`` (the head importance or
neuron contribution the circuit was selected by), ``write_norm`` (norm of the unit's Delta-mu write
into the residual stream) and, when the model is given, ``top_tokens`` (the tokens the write pushes
up most through the unembedding: its direct logit attribution) and a one-line ``label``. Links go
from ``input`` to the first circuit layer, from every unit of a circuit layer to every unit of the
next circuit layer, and from the last to ``logits`` (a node-level circuit: links say what reads
what across layers, they are not scored).

:func:`circuit_html` draws the nodes by layer (x) and rank within the layer (y), coloured by score,
with the label on hover; plotly's JavaScript is inlined, so the file opens offline.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from circuits.core.artifacts import write_text_atomic
from circuits.interop.controlvector import circuit_unit_writes

NODE_LINK_FORMAT = "emocircuits-node-link"
NODE_LINK_VERSION = 1


def node_link_graph(circuit: Any, model: Any = None, top_tokens: int = 5) -> dict[str, Any]:
    """The circuit as a node-link graph (see the module docstring); ``model`` (a ModelHandle of the
    circuit's model) adds each unit's write norm, top tokens and label."""
    writes = circuit_unit_writes(circuit, model) if model is not None else {}
    W_U = model.W_U.detach().float().cpu() if model is not None else None
    nodes: list[dict[str, Any]] = [{"id": "input", "kind": "input", "label": "input embeddings"}]
    layers: list[list[str]] = []
    for lc in circuit.layers:
        ids = []
        units = [("head", h, s, f"a{lc.layer}.h{h}") for h, s in zip(lc.heads, lc.head_scores)] + [
            ("neuron", n, s, f"m{lc.layer}.n{n}") for n, s in zip(lc.neurons, lc.neuron_scores)
        ]
        for kind, index, score, node_id in units:
            node = {
                "id": node_id,
                "layer": lc.layer,
                "kind": kind,
                "index": int(index),
                "emotion": circuit.emotion,
                "score": float(score),
            }
            if node_id in writes:
                w = writes[node_id]
                node["write_norm"] = float(w.norm())
                toks = torch.topk(w @ W_U, top_tokens).indices.tolist()
                node["top_tokens"] = [model.tokenizer.decode([t]) for t in toks]
                node["label"] = (
                    f"L{lc.layer} {'head' if kind == 'head' else 'neuron'} {index} ({circuit.emotion}, "
                    f"score {score:.3g}): " + ", ".join(repr(t.strip()) for t in node["top_tokens"])
                )
            else:
                node["label"] = f"L{lc.layer} {kind} {index} ({circuit.emotion}, score {score:.3g})"
            nodes.append(node)
            ids.append(node_id)
        if ids:
            layers.append(ids)
    nodes.append({"id": "logits", "kind": "logits", "label": "logits"})
    links = []
    chain = [["input"], *layers, ["logits"]]
    for up, down in zip(chain, chain[1:]):
        links += [{"source": a, "target": b} for a in up for b in down]
    return {
        "directed": True,
        "multigraph": False,
        "nodes": nodes,
        "links": links,
        "graph": {
            "format": NODE_LINK_FORMAT,
            "version": NODE_LINK_VERSION,
            "emotion": circuit.emotion,
            "model": {"name": circuit.model.get("name"), "fingerprint": circuit.model.get("fingerprint")},
            "n_heads": circuit.n_heads,
            "n_neurons": circuit.n_neurons,
        },
    }


def save_node_link(graph: dict[str, Any], path: str | os.PathLike) -> Path:
    return write_text_atomic(path, json.dumps(graph, indent=1))


def circuit_html(graph: dict[str, Any]) -> str:
    """A self-contained HTML page (plotly inlined) drawing the node-link ``graph``."""
    import plotly.graph_objects as go

    units = [n for n in graph["nodes"] if n.get("kind") in ("head", "neuron")]
    rank: dict[int, int] = {}
    xs, ys, text, color, symbol = [], [], [], [], []
    for n in sorted(units, key=lambda n: (n["layer"], n["kind"] != "head", -n["score"])):
        y = rank.get(n["layer"], 0)
        rank[n["layer"]] = y + 1
        xs.append(n["layer"])
        ys.append(y)
        text.append(n["label"])
        color.append(n["score"])
        symbol.append("diamond" if n["kind"] == "head" else "circle")
    g = graph["graph"]
    fig = go.Figure(
        go.Scatter(
            x=xs,
            y=ys,
            mode="markers",
            text=text,
            hoverinfo="text",
            marker=dict(
                size=10,
                color=color,
                colorscale="RdBu",
                reversescale=True,
                symbol=symbol,
                colorbar=dict(title="score"),
                line=dict(width=0.5, color="black"),
            ),
        )
    )
    fig.update_layout(
        title=f"{g['emotion']} circuit of {g['model'].get('name')}: {g['n_heads']} heads (diamonds), "
        f"{g['n_neurons']} neurons (circles); hover for top tokens",
        xaxis_title="layer",
        yaxis_title="units of the layer (heads first, by score)",
        template="plotly_white",
        height=640,
    )
    body = fig.to_html(include_plotlyjs=True, full_html=True, div_id="circuit")
    data = json.dumps(graph).replace("</", "<\\/")
    return body.replace("</body>", f'<script type="application/json" id="graph-data">{data}</script>\n</body>')


def save_circuit_html(graph: dict[str, Any], path: str | os.PathLike) -> Path:
    return write_text_atomic(path, circuit_html(graph))
