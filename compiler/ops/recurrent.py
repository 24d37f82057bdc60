"""Recurrent layers: Elman RNN, LSTM, GRU (torch's, batch-first), the Jordan RNN and
an LSTM decoder with Bahdanau attention (modelc.runtime).

`x -> lstm(512, layers=2)` gives the output sequence [B, T, D*H] (D = 2 when
bidirectional). With `state=true` the final state comes too:
`y, h, c = x -> lstm(512, state=true)`, h and c of shape [layers*D, B, H]; an
initial state is passed as extra inputs: `lstm(x, h0, c0, hidden=512)`.

MACs count the gate matmuls of every time step: T x layers x D x gates x H x (I + H)
(LSTM(512, 512, 2) at T=256: 1,073,741,824).
"""

from __future__ import annotations

from modelc.ops._util import known_channels, need_float32, need_rank
from modelc.ops.base import Attr, Ctor, OpDef, OpError, register
from modelc.pyformat import CallExpr

_ACTIVATIONS = ("tanh", "relu", "sigmoid", "identity")
_FUNCTIONS = {"tanh": lambda v: v.tanh(), "relu": lambda v: v.clamp(min=0), "sigmoid": lambda v: v.sigmoid(),
              "identity": lambda v: v}  # fmt: skip


class _Recurrent(OpDef):
    family = "recurrent"
    gates = 1
    torch_class = ""
    states = 1  # tensors in the state: h (RNN, GRU) or h and c (LSTM)
    attrs = (
        Attr("hidden", "int", positional=True, min=1, aliases=("hidden_size",), doc="state size H"),
        Attr("layers", "int", 1, min=1, aliases=("num_layers",), doc="stacked layers"),
        Attr("bidirectional", "bool", False),
        Attr("bias", "bool", True),
        Attr("dropout", "float", 0.0, min=0, doc="between stacked layers, in training"),
        Attr("state", "bool", False, doc="also output the final state: y, h = x -> gru(64, state=true)"),
    )  # fmt: skip
    inputs = None
    sequential = False
    outputs_layout = "strided"

    def resolve(self, a, ins):
        x = ins[0]
        need_rank(self.name, x, (3,), "[B, T, features] (batch first)")
        need_float32(self.name, *ins)
        size = known_channels(self.name, x, 2, "feature count (last dimension)")
        if a["dropout"] > 1:
            raise OpError("E0404", f"{self.name}: dropout must be between 0 and 1, got {a['dropout']:g}")
        if len(ins) not in (1, 1 + self.states):
            want = "x, h0" if self.states == 1 else "x, h0, c0"
            raise OpError("E0406", f"{self.name} takes x or ({want}), got {len(ins)} input tensors")
        dirs = 2 if a["bidirectional"] else 1
        state = (a["layers"] * dirs, x.dims[0], a["hidden"])
        for t in ins[1:]:
            if t.dims != state:
                raise OpError("E0301", f"{self.name}: an initial state must be "
                              f"[{', '.join(map(str, state))}] ([layers*directions, B, H]), got {t}")  # fmt: skip
        return {**a, "input_size": size, "dirs": dirs}

    def infer(self, a, ins):
        x = ins[0]
        b, t, _ = x.dims
        out = x.with_dims((b, t, a["dirs"] * a["hidden"]))
        state = x.with_dims((a["layers"] * a["dirs"], b, a["hidden"]))
        return [out] + ([state] * self.states if a["state"] else [])

    def _inputs_total(self, a) -> int:
        """The input sizes of the stacked layers added up: the first reads x, each other the
        layer below (a closed form: `layers` may be huge until the size limits reject it)."""
        return a["input_size"] + (a["layers"] - 1) * a["dirs"] * a["hidden"]

    def params(self, a):
        g, h, n = self.gates * a["hidden"], a["hidden"], a["layers"]
        return a["dirs"] * (g * (self._inputs_total(a) + n * h) + (2 * g * n if a["bias"] else 0))

    def macs(self, a, ins, outs):
        b, t, _ = ins[0].dims
        g, h = self.gates * a["hidden"], a["hidden"]
        return b * t * a["dirs"] * g * (self._inputs_total(a) + a["layers"] * h)

    def module(self, a):
        kw = [("num_layers", a["layers"], 1), ("bias", a["bias"], True), ("batch_first", True, None),
              ("dropout", a["dropout"], 0.0), ("bidirectional", a["bidirectional"], False)]
        kw += self._extra(a)
        return Ctor(f"nn.{self.torch_class}", (a["input_size"], a["hidden"]),
                    tuple((k, v) for k, v, default in kw if v != default))  # fmt: skip

    def _extra(self, a) -> list:
        return []

    def invoke(self, a, callee, args):
        if len(args) == 1:
            return CallExpr(callee, args)
        state = args[1] if self.states == 1 else f"({', '.join(args[1:])})"
        return CallExpr(callee, [args[0], state])

    def targets(self, a, names):
        if not a["state"]:
            return f"{names[0]}, _"
        state = names[1] if self.states == 1 else f"({', '.join(names[1:])})"
        return f"{names[0]}, {state}"

    # NOTE: [Reference recurrences] Stacked layers as torch runs them: layer l reads the
    # outputs of layer l-1 (both directions, concatenated); direction d of layer l has the
    # weights `weight_ih_l{l}` (`_reverse` for d = 1) and the initial state at index l*D + d.
    # Dropout between layers is off in eval mode.
    def reference(self, a, ins, w):
        import torch

        x, (b, dirs, hidden) = ins[0], (ins[0].shape[0], a["dirs"], a["hidden"])
        zeros = x.new_zeros(a["layers"] * dirs, b, hidden)
        init = list(ins[1:]) or [zeros] * self.states
        finals: list[list] = [[] for _ in range(self.states)]
        for layer in range(a["layers"]):
            outs = []
            for d in range(dirs):
                suffix = f"_l{layer}" + ("_reverse" if d else "")
                ys, last = self._direction(a, x, w, suffix, [s[layer * dirs + d] for s in init], bool(d))
                outs.append(ys)
                for k, v in enumerate(last):
                    finals[k].append(v)
            x = torch.cat(outs, -1)
        return [x] + ([torch.stack(f) for f in finals] if a["state"] else [])

    def _direction(self, a, x, w, suffix: str, state: list, reverse: bool):
        """One direction of one layer over the sequence: (outputs [B, T, H], final state)."""
        import torch

        def project(v, kind):  # v W^T + b
            y = v @ w[f"weight_{kind}{suffix}"].T
            return y + w[f"bias_{kind}{suffix}"] if a["bias"] else y

        steps = range(x.shape[1] - 1, -1, -1) if reverse else range(x.shape[1])
        outs = [None] * x.shape[1]
        for t in steps:
            state = self._cell(a, project(x[:, t], "ih"), lambda h: project(h, "hh"), state)
            outs[t] = state[0]
        return torch.stack(outs, 1), state

    def _cell(self, a, gx, hh, state: list) -> list:
        """The next state from the input's projection gx and the state's projection hh(h)."""
        raise NotImplementedError

    def label(self, a):
        extra = f", {a['layers']} layers" if a["layers"] > 1 else ""
        extra += ", bidirectional" if a["bidirectional"] else ""
        return f"{self.name} {a['hidden']}{extra}"


@register
class RNN(_Recurrent):
    name = "rnn"
    doc = "Elman RNN: h_t = tanh(W_ih x_t + b_ih + W_hh h_(t-1) + b_hh)."
    torch_class = "RNN"
    attrs = (*_Recurrent.attrs, Attr("nonlinearity", "str", "tanh", choices=("tanh", "relu")))

    def _cell(self, a, gx, hh, state):
        pre = gx + hh(state[0])  # h = act(W_ih x + b_ih + W_hh h + b_hh)
        return [pre.tanh() if a["nonlinearity"] == "tanh" else pre.clamp(min=0)]

    def _extra(self, a):
        return [("nonlinearity", a["nonlinearity"], "tanh")]


@register
class LSTM(_Recurrent):
    name = "lstm"
    doc = "Long short-term memory (input, forget, cell and output gates)."
    torch_class = "LSTM"
    gates = 4
    states = 2

    def _cell(self, a, gx, hh, state):
        h, c = state  # gates i, f, g, o in this order
        i, f, g, o = (gx + hh(h)).chunk(4, -1)
        c = i.sigmoid() * g.tanh() + f.sigmoid() * c
        return [o.sigmoid() * c.tanh(), c]


@register
class GRU(_Recurrent):
    name = "gru"
    doc = "Gated recurrent unit (reset, update and new gates)."
    torch_class = "GRU"
    gates = 3

    def _cell(self, a, gx, hh, state):
        h = state[0]  # gates r, z, n in this order; r applies to the state's projection of n
        (xr, xz, xn), (hr, hz, hn) = gx.chunk(3, -1), hh(h).chunk(3, -1)
        r, z = (xr + hr).sigmoid(), (xz + hz).sigmoid()
        n = (xn + r * hn).tanh()
        return [(1 - z) * n + z * h]


@register
class JordanRNN(OpDef):
    name = "jordan_rnn"
    family = "recurrent"
    doc = ("Jordan network: the previous *output* feeds back: h_t = act(U x_t + W y_(t-1) + b), "
           "y_t = output_act(V h_t + c); [B, T, I] -> [B, T, out].")  # fmt: skip
    attrs = (
        Attr("hidden", "int", positional=True, min=1, doc="hidden size H"),
        Attr("out", "int", positional=True, min=1, aliases=("output_size",), doc="output size"),
        Attr("activation", "str", "tanh", choices=_ACTIVATIONS),
        Attr("output_activation", "str", "sigmoid", choices=_ACTIVATIONS),
    )
    prefer_module = True
    outputs_layout = "strided"

    def resolve(self, a, ins):
        x = ins[0]
        need_rank(self.name, x, (3,), "[B, T, features] (batch first)")
        need_float32(self.name, x)
        return {**a, "input_size": known_channels(self.name, x, 2, "feature count (last dimension)")}

    def infer(self, a, ins):
        b, t, _ = ins[0].dims
        return [ins[0].with_dims((b, t, a["out"]))]

    def params(self, a):
        i, h, o = a["input_size"], a["hidden"], a["out"]
        return (h * i + h) + h * o + (o * h + o)

    def macs(self, a, ins, outs):
        b, t, _ = ins[0].dims
        i, h, o = a["input_size"], a["hidden"], a["out"]
        return b * t * (h * i + h * o + o * h)

    def module(self, a):
        kw = [("activation", a["activation"], "tanh"), ("output_activation", a["output_activation"], "sigmoid")]
        return Ctor("rt.JordanRNN", (a["input_size"], a["hidden"], a["out"]),
                    tuple((k, v) for k, v, default in kw if v != default))  # fmt: skip

    def reference(self, a, ins, w):
        import torch

        x = ins[0]  # h_t = act(U x_t + W y_(t-1) + b), y_t = output_act(V h_t + c), y_0 = 0
        act, out_act = _FUNCTIONS[a["activation"]], _FUNCTIONS[a["output_activation"]]
        y, outs = x.new_zeros(x.shape[0], a["out"]), []
        for t in range(x.shape[1]):
            h = act(x[:, t] @ w["U.weight"].T + w["U.bias"] + y @ w["W.weight"].T)
            y = out_act(h @ w["V.weight"].T + w["V.bias"])
            outs.append(y)
        return [torch.stack(outs, 1)]

    def label(self, a):
        return f"jordan rnn {a['hidden']}->{a['out']}"


@register
class BahdanauDecoder(OpDef):
    name = "bahdanau_decoder"
    family = "recurrent"
    doc = ("LSTM decoder with additive attention (Bahdanau et al. 2015), teacher-forced: "
           "(targets [B, T, E], encoder states [B, S, K], initial state [B, H]) -> "
           "(states [B, T, H], contexts [B, T, K]).")  # fmt: skip
    attrs = (
        Attr("hidden", "int", positional=True, min=1, doc="decoder state size H"),
        Attr("attention", "int", None, min=1, aliases=("attn_dim",), doc="attention size (default H)"),
    )
    inputs = 3
    sequential = False
    outputs_layout = "strided"

    def resolve(self, a, ins):
        y, enc, s0 = ins
        for t, what in ((y, "targets [B, T, E]"), (enc, "encoder states [B, S, K]")):
            need_rank(self.name, t, (3,), what)
        need_float32(self.name, *ins)
        if s0.dims != (y.dims[0], a["hidden"]) or enc.dims[0] != y.dims[0]:
            raise OpError("E0301", f"{self.name}: targets {y}, encoder states {enc} and initial state "
                          f"{s0} do not fit [B, T, E], [B, S, K], [B, {a['hidden']}]")  # fmt: skip
        emb = known_channels(self.name, y, 2, "target embedding size")
        k = known_channels(self.name, enc, 2, "encoder state size")
        return {**a, "emb": emb, "enc": k, "attention": a["attention"] or a["hidden"]}

    def infer(self, a, ins):
        b, t, _ = ins[0].dims
        y = ins[0]
        return [y.with_dims((b, t, a["hidden"])), y.with_dims((b, t, a["enc"]))]

    def params(self, a):
        h, att, e, k = a["hidden"], a["attention"], a["emb"], a["enc"]
        return h * att + (k * att + att) + att + 4 * h * (e + k + h) + 8 * h

    def macs(self, a, ins, outs):
        (b, t, _), s = ins[0].dims, ins[1].dims[1]
        h, att, e, k = a["hidden"], a["attention"], a["emb"], a["enc"]
        return b * (s * k * att + t * (h * att + s * att + s * k + 4 * h * (e + k + h)))

    def module(self, a):
        kw = () if a["attention"] == a["hidden"] else (("attention", a["attention"]),)
        return Ctor("rt.BahdanauDecoder", (a["emb"], a["enc"], a["hidden"]), kw)

    def reference(self, a, ins, w):
        import torch

        y, enc, h = ins  # e_j = v . tanh(W s + U h_j + b), c_t = softmax(e) . h, s_t = LSTMCell([y_t; c_t], s)
        keys = enc @ w["U_a.weight"].T + w["U_a.bias"]
        c, states, contexts = torch.zeros_like(h), [], []
        for t in range(y.shape[1]):
            scores = ((keys + (h @ w["W_a.weight"].T)[:, None]).tanh() @ w["v_a.weight"].T)[..., 0]  # [B, S]
            e = (scores - scores.amax(1, keepdim=True)).exp()
            context = ((e / e.sum(1, keepdim=True))[..., None] * enc).sum(1)
            gates = torch.cat([y[:, t], context], 1) @ w["cell.weight_ih"].T + w["cell.bias_ih"]
            i, f, g, o = (gates + h @ w["cell.weight_hh"].T + w["cell.bias_hh"]).chunk(4, -1)
            c = i.sigmoid() * g.tanh() + f.sigmoid() * c
            h = o.sigmoid() * c.tanh()
            states.append(h)
            contexts.append(context)
        return [torch.stack(states, 1), torch.stack(contexts, 1)]

    def label(self, a):
        return f"bahdanau decoder {a['hidden']}"
