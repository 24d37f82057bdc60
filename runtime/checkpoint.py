"""Loading a checkpoint of the unoptimized model into an optimized one (-O1, -O2).

An optimized model's class lists how its parameters come from the unoptimized model's
(`LOAD_RULES`, written by modelc's passes) and registers `CheckpointRules(LOAD_RULES)` as a
`load_state_dict` pre-hook: `model.load_state_dict(torchvision_resnet50.state_dict())`
folds the BatchNorm statistics into the convolutions, concatenates separate q/k/v
projections, and so on. A rule applies only when its source keys are present, so the
optimized model's own checkpoints load unchanged. Arithmetic is done in float32 and cast
back to the parameter's dtype.
"""

from __future__ import annotations

import torch

__all__ = ["CheckpointRules"]


class CheckpointRules:
    """A load_state_dict pre-hook applying modelc's load rules (picklable: no closures)."""

    def __init__(self, rules: tuple) -> None:
        self.rules = tuple(rules)

    def __call__(self, module, state_dict, prefix, *args) -> None:
        for kind, params in self.rules:
            _RULES[kind](state_dict, prefix, *params)


def _fold_batchnorm(sd, prefix, layer, bn, kind, groups, eps, affine, had_bias) -> None:
    stats = f"{prefix}{bn}.running_mean"
    if stats not in sd or f"{prefix}{layer}.weight" not in sd:
        return  # already folded, or not this model's checkpoint: load reports what is missing
    mean = sd.pop(stats).float()
    var = sd.pop(f"{prefix}{bn}.running_var").float()
    sd.pop(f"{prefix}{bn}.num_batches_tracked", None)
    gamma = sd.pop(f"{prefix}{bn}.weight").float() if affine else torch.ones_like(mean)
    beta = sd.pop(f"{prefix}{bn}.bias").float() if affine else torch.zeros_like(mean)
    scale = gamma / torch.sqrt(var + eps)
    shift = beta - mean * scale
    w = sd[f"{prefix}{layer}.weight"]
    bias_key = f"{prefix}{layer}.bias"
    b = sd[bias_key].float() if had_bias and bias_key in sd else torch.zeros(_out_channels(w, kind, groups))
    if kind in ("conv", "linear"):  # BN after: output channels are dim 0 of the weight
        new_w = w.float() * scale.reshape(-1, *[1] * (w.dim() - 1))
        new_b = b * scale + shift
    elif kind == "conv_transpose":  # weight [in, out/groups, k...]: output channel = group * (out/groups) + j
        wf = w.float()
        per_group = wf.reshape(groups, wf.shape[0] // groups, *wf.shape[1:])
        s = scale.reshape(groups, 1, wf.shape[1], *[1] * (wf.dim() - 2))
        new_w = (per_group * s).reshape(wf.shape)
        new_b = b * scale + shift
    elif kind in ("conv_input", "linear_input"):  # BN before: input channels take the scale
        wf = w.float()
        out, per_group = wf.shape[0], wf.shape[1]
        idx = torch.arange(out).div(out // groups, rounding_mode="floor")[:, None] * per_group + torch.arange(per_group)
        s, t = scale[idx], shift[idx]  # [out, in/groups]: the channel each weight reads
        extra = [1] * (wf.dim() - 2)
        new_w = wf * s.reshape(out, per_group, *extra)
        new_b = b + (wf * t.reshape(out, per_group, *extra)).flatten(1).sum(1)
    else:
        raise ValueError(f"unknown fold kind {kind!r}")
    sd[f"{prefix}{layer}.weight"] = new_w.to(w.dtype)
    sd[bias_key] = new_b.to(w.dtype)


def _out_channels(w, kind: str, groups: int) -> int:
    return w.shape[1] * groups if kind == "conv_transpose" else w.shape[0]


def _drop(sd, prefix, layer) -> None:
    """A layer the optimized model does not have (its value reached no output)."""
    for key in [k for k in sd if k.startswith(f"{prefix}{layer}.")]:
        del sd[key]


def _concat(sd, prefix, merged, sources, bias) -> None:
    """Layers merged into one (separate q, k, v projections of one input): its weight, and its
    bias when it has one, are the sources' concatenated along dim 0 (their output features)."""
    names = ["weight", "bias"] if bias else ["weight"]
    keys = [[f"{prefix}{src}.{name}" for src in sources] for name in names]
    if not all(k in sd for group in keys for k in group):
        return  # already merged, or not this model's checkpoint: load reports what is missing
    for name, group in zip(names, keys):
        sd[f"{prefix}{merged}.{name}"] = torch.cat([sd.pop(k) for k in group], dim=0)


def _merge_depthwise_pointwise(sd, prefix, dw, pw, channels, dw_bias, pw_bias) -> None:
    """depthwise conv `dw` (weight [C*M, 1, k...], channel c*M + m reads input c) then pointwise
    `pw` (weight [N, C*M, 1...]) -> one dense conv under `pw`'s name: W[n, c] = sum_m
    Wpw[n, c*M + m] * Wdw[c*M + m], bias = Wpw @ bdw + bpw."""
    if f"{prefix}{dw}.weight" not in sd or f"{prefix}{pw}.weight" not in sd:
        return  # already merged, or not this model's checkpoint: load reports what is missing
    wd = sd.pop(f"{prefix}{dw}.weight")
    bd = sd.pop(f"{prefix}{dw}.bias").float() if dw_bias else None
    wp = sd[f"{prefix}{pw}.weight"]
    n, kernel = wp.shape[0], wd.shape[2:]
    m = wd.shape[0] // channels
    per_in = wp.float().reshape(n, channels, m, *[1] * len(kernel)) * wd.float().reshape(1, channels, m, *kernel)
    sd[f"{prefix}{pw}.weight"] = per_in.sum(2).to(wp.dtype)
    bias_key = f"{prefix}{pw}.bias"
    if dw_bias or pw_bias:
        b = sd[bias_key].float() if pw_bias else torch.zeros(n)
        if bd is not None:
            b = b + wp.float().reshape(n, -1) @ bd
        sd[bias_key] = b.to(wp.dtype)


def _merge_pointwise_depthwise(sd, prefix, pw, dw, pw_bias, dw_bias) -> None:
    """pointwise conv `pw` (weight [C', C, 1...]) then depthwise `dw` (weight [C'*M, 1, k...])
    -> one dense conv under `dw`'s name: W[j, c] = Wdw[j] * Wpw[j // M, c], bias = bdw +
    sum(Wdw[j]) * bpw[j // M] (the pass merges a pointwise bias only where `dw` has no padding)."""
    if f"{prefix}{pw}.weight" not in sd or f"{prefix}{dw}.weight" not in sd:
        return  # already merged, or not this model's checkpoint: load reports what is missing
    wp = sd.pop(f"{prefix}{pw}.weight").float()
    bp = sd.pop(f"{prefix}{pw}.bias").float() if pw_bias else None
    wd = sd[f"{prefix}{dw}.weight"]
    m = wd.shape[0] // wp.shape[0]
    spatial = [1] * (wd.dim() - 2)
    wide = wp.flatten(1).repeat_interleave(m, dim=0)  # [C'*M, C]: row j is Wpw[j // M]
    sd[f"{prefix}{dw}.weight"] = (wd.float() * wide.reshape(*wide.shape, *spatial)).to(wd.dtype)
    bias_key = f"{prefix}{dw}.bias"
    if dw_bias or pw_bias:
        b = sd[bias_key].float() if dw_bias else torch.zeros(wd.shape[0])
        if bp is not None:
            b = b + wd.float().flatten(1).sum(1) * bp.repeat_interleave(m)
        sd[bias_key] = b.to(wd.dtype)


_RULES = {"fold_batchnorm": _fold_batchnorm, "drop": _drop, "concat": _concat,
          "merge_depthwise_pointwise": _merge_depthwise_pointwise,
          "merge_pointwise_depthwise": _merge_pointwise_depthwise}
