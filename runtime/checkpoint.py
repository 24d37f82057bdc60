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


_RULES = {"fold_batchnorm": _fold_batchnorm, "drop": _drop}
