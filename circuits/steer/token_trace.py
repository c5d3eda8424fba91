"""Per-token traces: each token's residual projected on the emotion directions, read while the model
generates (steered or not), and a self-contained HTML view of the reply coloured by that score.

:func:`trace_generation` runs greedy decoding one token at a time through the bridge with a KV cache,
under the same hooks as generation (the prompt once at prefill, then one position per step, so
``Intervention`` positions mean exactly what they mean in :func:`circuits.core.generate.generate`) and
reads ``resid_post`` of every layer at every position. :func:`trace_text` reads a given text in one
teacher-forced pass. The score of token t at layer L for emotion e is the cosine between the residual
and the unit direction ``v_{L,e}`` (resid_post read point): scale-free, so layers compare.
"""

from __future__ import annotations

import html
import json
from typing import Any, Sequence

import torch
from jaxtyping import Float

from circuits.core.hooks import Intervention, Read, make_hooks
from circuits.core.model import ModelHandle


def _scores(states: Float[torch.Tensor, "n_layers pos d_model"], directions: Any) -> torch.Tensor:
    """``[n_layers, pos, n_emotions]`` cosines of each state with the unit directions (resid_post)."""
    v = directions.unit[1].float()  # [L, E, d]
    h = states.float()
    return torch.einsum("lpd,led->lpe", h, v) / h.norm(dim=-1, keepdim=True).clamp_min(1e-12)


@torch.no_grad()
def trace_generation(
    model: ModelHandle,
    prompt: Sequence[int],
    directions: Any,
    interventions: Sequence[Intervention] = (),
    max_new_tokens: int = 48,
) -> dict[str, Any]:
    """Greedy generation from ``prompt`` (token ids) with ``interventions``, reading every layer's
    residual at every position. Returns ``{"tokens" (decoded pieces of prompt + reply), "n_prompt",
    "reply", "emotions", "scores": [n_layers][n_tokens][n_emotions]}``."""
    L = model.arch.n_layers
    reads = [Read("resid_post", layer, positions="all") for layer in range(L)]
    got: dict = {}
    ids = list(prompt)
    states: list[torch.Tensor] = []
    eos = model.tokenizer.eos_token_id
    with model.bridge.hooks(fwd_hooks=make_hooks(model, interventions, reads, into=got)):
        x = torch.tensor([ids], device=model.device)
        out = model.hf_model(input_ids=x, attention_mask=torch.ones_like(x), use_cache=True, logits_to_keep=1)
        states.append(torch.stack([got[r][0] for r in reads]))  # [L, pos, d]
        cache = model.kv_cache_of(out)
        for _ in range(max_new_tokens):
            nxt = int(out.logits[0, -1].argmax())
            if eos is not None and nxt == eos:
                break
            ids.append(nxt)
            mask = torch.ones(1, len(ids), dtype=torch.long, device=model.device)
            out = model.hf_model(
                input_ids=torch.tensor([[nxt]], device=model.device),
                attention_mask=mask,
                use_cache=True,
                logits_to_keep=1,
                **{model.kv_cache_kwarg: cache},
            )
            cache = model.kv_cache_of(out)
            states.append(torch.stack([got[r][0] for r in reads]))
    all_states = torch.cat(states, 1)  # [L, n_tokens, d]; the last generated token's state is read too
    tok = model.tokenizer
    return {
        "tokens": [tok.decode([t]) for t in ids],
        "n_prompt": len(prompt),
        "reply": tok.decode(ids[len(prompt) :], skip_special_tokens=True).strip(),
        "emotions": list(directions.emotions),
        "scores": _scores(all_states, directions).tolist(),
    }


@torch.no_grad()
def trace_text(
    model: ModelHandle, text: str, directions: Any, interventions: Sequence[Intervention] = ()
) -> dict[str, Any]:
    """The same for a given plain text (no chat template), teacher-forced in one pass."""
    from circuits.core.hooks import run_forward

    ids = model.tokenizer(text, add_special_tokens=True)["input_ids"]
    x = torch.tensor([ids], device=model.device)
    reads = [Read("resid_post", layer, positions="all") for layer in range(model.arch.n_layers)]
    got = run_forward(model, x, torch.ones_like(x), interventions, reads)
    states = torch.stack([got[r][0] for r in reads])
    return {
        "tokens": [model.tokenizer.decode([t]) for t in ids],
        "n_prompt": 0,
        "reply": text,
        "emotions": list(directions.emotions),
        "scores": _scores(states, directions).tolist(),
    }


_PAGE = """<!DOCTYPE html><html><head><meta charset="utf-8"><title>__TITLE__</title><style>
body{font-family:sans-serif;margin:2em;max-width:70em} .tok{padding:1px 0;border-radius:2px;white-space:pre-wrap}
.prompt{color:#888} table{border-collapse:collapse;font-size:11px} td{width:14px;height:12px;padding:0}
th{font-weight:normal;text-align:right;padding-right:4px}</style></head><body>
<h1>__TITLE__</h1><p>__META__</p>
<label>emotion <select id="emo"></select></label> <label>layer <input id="layer" type="range" min="0"></label>
<span id="lname"></span> <label><input id="showprompt" type="checkbox"> show the prompt</label>
<p>colour: cosine of the token's residual (resid_post) with the emotion's direction, red positive, blue negative,
scaled to the largest absolute value of this emotion and layer in the text</p>
<div id="text" style="line-height:1.9;border:1px solid #ddd;padding:1em"></div>
<h3>every layer (rows) x token (columns), the chosen emotion</h3><div id="grid"></div>
<script>
const D = __DATA__;
const emo = document.getElementById('emo'), layer = document.getElementById('layer');
D.emotions.forEach((e, i) => { const o = document.createElement('option'); o.value = i; o.text = e; emo.add(o); });
emo.value = D.default_emotion; layer.max = D.scores.length - 1; layer.value = D.default_layer;
function colour(v, m) { const a = m > 0 ? Math.min(1, Math.abs(v) / m) : 0;
  return v >= 0 ? `rgba(214,39,40,${a.toFixed(3)})` : `rgba(31,119,180,${a.toFixed(3)})`; }
function esc(s) { return s.replace(/&/g, '&amp;').replace(/</g, '&lt;'); }
function draw() {
  const e = +emo.value, l = +layer.value, show = document.getElementById('showprompt').checked;
  document.getElementById('lname').textContent = `layer ${l} of ${D.scores.length - 1}`;
  const start = show ? 0 : D.n_prompt, row = D.scores[l].map(s => s[e]);
  const m = Math.max(...row.slice(start).map(Math.abs));
  document.getElementById('text').innerHTML = D.tokens.map((t, i) => i < start ? '' :
    `<span class="tok${i < D.n_prompt ? ' prompt' : ''}" title="${row[i].toFixed(3)}" style="background:${colour(row[i], m)}">${esc(t)}</span>`).join('');
  let g = '<table>';
  for (let k = D.scores.length - 1; k >= 0; k--) {
    const r = D.scores[k].map(s => s[e]), mk = Math.max(...r.slice(start).map(Math.abs));
    g += `<tr><th>${k}</th>` + r.slice(start).map(v => `<td title="${v.toFixed(3)}" style="background:${colour(v, mk)}"></td>`).join('') + '</tr>';
  }
  document.getElementById('grid').innerHTML = g + '</table>';
}
emo.onchange = draw; layer.oninput = draw; document.getElementById('showprompt').onchange = draw; draw();
</script></body></html>"""


def trace_html(
    trace: dict[str, Any], title: str, meta: str = "", emotion: str | None = None, layer: int | None = None
) -> str:
    """A self-contained page (no network): the reply's tokens coloured by score, with an emotion menu and
    a layer slider, and the layer x token grid of the chosen emotion."""
    data = dict(trace)
    data["default_emotion"] = trace["emotions"].index(emotion) if emotion in trace["emotions"] else 0
    data["default_layer"] = layer if layer is not None else int(0.6 * (len(trace["scores"]) - 1))
    payload = json.dumps(data).replace("</", "<\\/")
    return (
        _PAGE.replace("__TITLE__", html.escape(title))
        .replace("__META__", html.escape(meta))
        .replace("__DATA__", payload)
    )
