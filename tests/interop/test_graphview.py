"""Circuit graphs for other tools: the EAP-IG JSON read back by a reader written from EAP-IG's documented
format, the node-link JSON (networkx reads it; top tokens against a slow reference), the HTML view."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest
import torch

from circuits.core.hooks import Intervention, Read, run_forward
from circuits.interop.graphview import circuit_html, node_link_graph, save_circuit_html


@pytest.fixture(scope="module")
def circuit(qwen_tiny):
    from circuits.circuit import assemble_circuit

    a = qwen_tiny.arch
    g = torch.Generator().manual_seed(2)
    return assemble_circuit(
        "fear",
        influence_attn=torch.ones(a.n_layers),
        influence_mlp=torch.ones(a.n_layers),
        neuron_scores=torch.randn(a.n_layers, a.d_mlp, generator=g),
        head_scores=torch.randn(a.n_layers, a.n_heads, generator=g),
        delta_mu_mlp=torch.randn(a.n_layers, a.d_mlp, generator=g),
        delta_mu_heads=torch.randn(a.n_layers, a.n_heads, a.d_head, generator=g),
        model_info={"name": qwen_tiny.name, "fingerprint": qwen_tiny.fingerprint, "arch": a},
    )


class EapGraphReader:
    """A reader of EAP-IG's graph JSON written from its documented format, not from its code: the full
    graph follows from ``cfg`` (``input``; per layer the heads ``a{L}.h{H}`` then the MLP ``m{L}``;
    ``logits``; an edge from every earlier node into each head, once per q / k / v input, and into each
    MLP and the logits); the file then sets ``in_graph`` (a bool, or a dict holding it) per node and
    ``score`` / ``in_graph`` per edge. Unknown names are errors, as in EAP-IG."""

    def __init__(self, obj):
        cfg = obj["cfg"]
        self.nodes, self.edges = {"input": False}, {}
        upstream = ["input"]
        for L in range(cfg["n_layers"]):
            heads = [f"a{L}.h{h}" for h in range(cfg["n_heads"])]
            for h in heads:
                self.nodes[h] = False
                self.edges.update({f"{p}->{h}<{x}>": None for p in upstream for x in "qkv"})
            upstream += heads
            self.nodes[f"m{L}"] = False
            self.edges.update({f"{p}->m{L}": None for p in upstream})
            upstream.append(f"m{L}")
        self.nodes["logits"] = False
        self.edges.update({f"{p}->logits": None for p in upstream})
        for name, value in obj["nodes"].items():
            if name not in self.nodes:
                raise KeyError(name)
            self.nodes[name] = value["in_graph"] if isinstance(value, dict) else bool(value)
        for name, info in obj["edges"].items():
            if name not in self.edges:
                raise KeyError(name)
            self.edges[name] = info


def test_eap_graph_round_trip(circuit, tmp_path):
    path = circuit.save_graph(tmp_path / "fear.graph.json")
    obj = json.loads(path.read_text())
    g = EapGraphReader(obj)
    heads = {n for n, on in g.nodes.items() if on and n.startswith("a")}
    mlps = {n for n, on in g.nodes.items() if on and n.startswith("m")}
    assert heads == {f"a{lc.layer}.h{h}" for lc in circuit.layers for h in lc.heads}
    assert mlps == {f"m{lc.layer}" for lc in circuit.layers if lc.neurons}
    neurons = {int(n[1:]): obj["nodes"][n]["mlp_neurons"] for n in mlps}
    assert neurons == {lc.layer: list(lc.neurons) for lc in circuit.layers if lc.neurons}
    kept = {e for e, info in g.edges.items() if info and info["in_graph"]}
    assert kept and all(e.split("->")[0] in heads | mlps | {"input"} for e in kept)
    obj["nodes"]["a99.h0"] = {"in_graph": True}
    with pytest.raises(KeyError):
        EapGraphReader(obj)


def test_node_link_graph_labels_and_top_tokens(circuit, qwen_tiny):
    import networkx as nx

    m = qwen_tiny
    g = node_link_graph(circuit, m, top_tokens=3)
    G = nx.node_link_graph(g, edges="links")
    units = {f"a{lc.layer}.h{h}" for lc in circuit.layers for h in lc.heads} | {
        f"m{lc.layer}.n{n}" for lc in circuit.layers for n in lc.neurons
    }
    assert set(G.nodes) == units | {"input", "logits"}
    assert nx.is_directed_acyclic_graph(G) and nx.has_path(G, "input", "logits")
    lc = next(lc for lc in circuit.layers if lc.heads)
    j, head = 0, lc.heads[0]
    node = G.nodes[f"a{lc.layer}.h{head}"]
    assert node["emotion"] == "fear" and node["layer"] == lc.layer and f"L{lc.layer} head {head}" in node["label"]
    # slow reference: the head's Delta-mu edit moves attn_out by its write; that write through W_U ranks the tokens
    ids, mask = m.pad_left([m.chat_ids(None, "I took the bus.")])
    r = Read("attn_out", lc.layer)
    dmu = circuit.delta_mu[f"attn.{lc.layer}"][j : j + 1]
    edit = Intervention("heads", lc.layer, "add", (head,), vector=dmu, positions="last")
    write = run_forward(m, ids, mask, [edit], [r])[r][0] - run_forward(m, ids, mask, reads=[r])[r][0]
    assert node["write_norm"] == pytest.approx(float(write.norm()), rel=1e-4)
    want = torch.topk(write @ m.W_U.float(), 3).indices.tolist()
    assert node["top_tokens"] == [m.tokenizer.decode([t]) for t in want]


def test_html_view_holds_every_node_and_renders(circuit, qwen_tiny, tmp_path):
    g = node_link_graph(circuit, qwen_tiny)
    path = save_circuit_html(g, tmp_path / "fear.html")
    html = path.read_text()
    assert '<script src="http' not in html and "Plotly.newPlot" in html  # self-contained: no script from the net
    data = html.split('<script type="application/json" id="graph-data">')[1].split("</script>")[0]
    assert {n["id"] for n in json.loads(data)["nodes"]} == {n["id"] for n in g["nodes"]}
    assert all(json.dumps(n["label"])[1:-1] in html for n in g["nodes"] if n["kind"] in ("head", "neuron"))
    assert circuit_html(g) == html
    browser = next(
        (shutil.which(b) for b in ("chromium", "chromium-browser", "google-chrome") if shutil.which(b)), None
    )
    if browser is None:
        pytest.skip("no headless Chromium here: the page was checked as a file only")
    dom = subprocess.run(
        [browser, "--headless", "--disable-gpu", "--no-sandbox", "--dump-dom", path.as_uri()],
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    assert 'class="plot-container' in dom  # plotly drew the figure
