"""A circuit as a graph in EAP-IG's JSON layout (``Graph.to_json`` / ``from_json``), for other circuit tools."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from circuits.circuit.emotion_circuit import Circuit

GRAPH_FORMAT = "eap-graph"
GRAPH_SCHEMA_VERSION = 2


def circuit_graph(circuit: "Circuit") -> dict[str, Any]:
    """The circuit as a graph JSON object in EAP-IG's layout (``Graph.to_json`` / ``from_json``).

    * ``cfg``: ``n_layers``, ``n_heads`` (query heads), ``d_model``, ``parallel_attn_mlp`` (false);
    * ``nodes``: every node of the model's graph by EAP-IG's names: ``input``, ``a{L}.h{H}``,
      ``m{L}``, ``logits``; each ``{"in_graph": bool}``, circuit nodes also with ``score`` (a head's
      importance; an MLP's sum of its selected neurons' scores) and MLP nodes with
      ``mlp_neurons`` / ``mlp_neuron_scores`` (indices into d_mlp; EAP-IG's own ``neurons`` field
      is over d_model and is not used);
    * ``edges``: this is a node-level circuit, so the edges are those EAP-IG's topology gives
      between its nodes (with ``input`` and ``logits``): ``P->a{L}.h{H}<q|k|v>`` from every
      earlier node, ``P->m{L}`` from every node before that MLP (the heads of its own layer
      included), ``P->logits`` from all; each ``{"score": 0.0, "in_graph": true}`` (edges are
      not scored);
    * ``metadata``: ``format``, ``schema_version``, ``model`` (name, fingerprint, arch), ``emotion``.
    """
    arch = circuit.model["arch"]
    n_layers, n_heads = int(arch["n_layers"]), int(arch["n_heads"])
    heads = {(lc.layer, h): float(s) for lc in circuit.layers for h, s in zip(lc.heads, lc.head_scores)}
    mlps = {lc.layer: lc for lc in circuit.layers if lc.neurons}
    nodes: dict[str, dict[str, Any]] = {"input": {"in_graph": True}}
    for layer in range(n_layers):
        for h in range(n_heads):
            score = heads.get((layer, h))
            nodes[f"a{layer}.h{h}"] = {"in_graph": False} if score is None else {"in_graph": True, "score": score}
        lc = mlps.get(layer)
        nodes[f"m{layer}"] = (
            {"in_graph": False}
            if lc is None
            else {
                "in_graph": True,
                "score": float(sum(lc.neuron_scores)),
                "mlp_neurons": [int(i) for i in lc.neurons],
                "mlp_neuron_scores": [float(s) for s in lc.neuron_scores],
            }
        )
    nodes["logits"] = {"in_graph": True}
    edges: dict[str, dict[str, Any]] = {}
    upstream = ["input"]  # circuit nodes whose output the next node reads
    for layer in range(n_layers):
        layer_heads = [f"a{layer}.h{h}" for h in range(n_heads) if (layer, h) in heads]
        for child in layer_heads:
            for parent in upstream:
                for qkv in "qkv":
                    edges[f"{parent}->{child}<{qkv}>"] = {"score": 0.0, "in_graph": True}
        upstream += layer_heads
        if layer in mlps:
            for parent in upstream:
                edges[f"{parent}->m{layer}"] = {"score": 0.0, "in_graph": True}
            upstream.append(f"m{layer}")
    for parent in upstream:
        edges[f"{parent}->logits"] = {"score": 0.0, "in_graph": True}
    return {
        "cfg": {"n_layers": n_layers, "n_heads": n_heads, "d_model": int(arch["d_model"]), "parallel_attn_mlp": False},
        "nodes": nodes,
        "edges": edges,
        "metadata": {
            "format": GRAPH_FORMAT,
            "schema_version": GRAPH_SCHEMA_VERSION,
            "model": {
                "name": circuit.model["name"],
                "fingerprint": circuit.model["fingerprint"],
                "arch": dict(circuit.model["arch"]),
            },
            "emotion": circuit.emotion,
            "edges_scored": False,
        },
    }
