"""Train a modelc-generated module with PyTorch's own data-parallel engines.

    python examples/train_distributed.py --model gpt --engine single --out single.pt
    torchrun --standalone --nproc_per_node=2 examples/train_distributed.py --model gpt --engine ddp --out ddp.pt
    torchrun --standalone --nproc_per_node=2 examples/train_distributed.py --model gpt --engine fsdp2 --out fsdp2.pt

The three runs see the same global batches (seeded synthetic data; each rank takes its
contiguous shard of every global batch) and start from the same weights, so after the
steps they hold the same parameters, up to the rounding of the gradient all-reduce
(docs/distributed.md: within 1e-6, but for GPT's key bias under AdamW).
Nothing here is home-made: DistributedDataParallel and FSDP2 (`fully_shard`) do the
work, and the generated module is used as it comes out of `modelc.load`.

- `ddp`: every rank builds the module with the same seed (DDP broadcasts rank 0's
  weights anyway) and DDP all-reduces (averages) the gradients.
- `fsdp2`: the module is built on the `meta` device (no memory), each repeated block of
  the spec (an `nn.Sequential` of a `repeat`/`for`) and then the whole model become FSDP
  units, the sharded parameters are materialised with `to_empty`, and the initial weights
  come from a full state dict built on rank 0 and broadcast (`set_model_state_dict`,
  `broadcast_from_rank0`). The final weights are gathered with `get_model_state_dict`
  and full state dict options.

`--backend gloo` (the default on a CPU) runs anywhere; with `--backend nccl` each rank
takes the GPU `cuda:$LOCAL_RANK`. docs/distributed.md says how to run it on several nodes.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

import modelc

SPECS = Path(__file__).resolve().parent.parent / "specs"
Batch = tuple[torch.Tensor, torch.Tensor]


# ---- the models: a zoo spec at a small size, its synthetic data and its loss ----------------------
@dataclass(frozen=True)
class Preset:
    """A spec of the zoo at a size that trains in seconds on a CPU."""

    spec: str  # a file of specs/
    params: dict[str, Any]  # the spec's parameters (small sizes)
    batch: Callable[[torch.Generator, int], Batch]  # (generator, global batch size) -> inputs, targets
    loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = F.cross_entropy


def _images(shape: tuple[int, ...], classes: int) -> Callable[[torch.Generator, int], Batch]:
    def make(gen: torch.Generator, n: int) -> Batch:
        return torch.randn((n, *shape), generator=gen), torch.randint(classes, (n,), generator=gen)

    return make


def _tokens(vocab: int, length: int) -> Callable[[torch.Generator, int], Batch]:
    def make(gen: torch.Generator, n: int) -> Batch:
        seq = torch.randint(vocab, (n, length + 1), generator=gen)
        return seq[:, :-1], seq[:, 1:]  # predict the next token

    return make


def _lm_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits.flatten(0, 1), targets.flatten())


GPT_SMALL = {"vocab": 64, "block_size": 16, "layers": 2, "heads": 2, "width": 32}
PRESETS = {
    "lenet5": Preset("lenet5.model", {}, _images((1, 32, 32), 10)),
    "mlp": Preset("mlp.model", {"hidden": [64, 32]}, _images((1, 28, 28), 10)),
    "resnet18": Preset("resnet18.model", {"num_classes": 10}, _images((3, 32, 32), 10)),
    "gpt": Preset("gpt.model", GPT_SMALL, _tokens(GPT_SMALL["vocab"], 8), _lm_loss),
}


# ---- processes ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class World:
    rank: int
    size: int
    device: torch.device


def start(engine: str, backend: str) -> World:
    """One process for `single`; otherwise join the process group torchrun describes in the
    environment (RANK, WORLD_SIZE, MASTER_ADDR...). With nccl each rank takes the GPU of
    its LOCAL_RANK; with gloo every rank computes on the CPU."""
    if engine == "single":
        return World(0, 1, torch.device("cuda" if backend == "nccl" else "cpu"))
    if "RANK" not in os.environ:
        sys.exit(f"--engine {engine} runs under torchrun: torchrun --nproc_per_node=2 {sys.argv[0]} ...")
    device = torch.device("cpu")
    if backend == "nccl":
        device = torch.device("cuda", int(os.environ["LOCAL_RANK"]))
        torch.cuda.set_device(device)
    dist.init_process_group(backend)
    return World(dist.get_rank(), dist.get_world_size(), device)


def seeded_model(cls: type, seed: int, device: torch.device) -> nn.Module:
    """The module as built with `seed`: the same weights in every process and every engine
    (generated modules initialise through torch's RNG, module by module, in a fixed order)."""
    torch.manual_seed(seed)
    return cls().to(device)


# ---- the engines ----------------------------------------------------------------------------------
def wrap(engine: str, cls: type, seed: int, world: World) -> nn.Module:
    if engine == "single":
        return seeded_model(cls, seed, world.device)
    if engine == "ddp":
        from torch.nn.parallel import DistributedDataParallel as DDP

        ids = [world.device.index] if world.device.type == "cuda" else None
        return DDP(seeded_model(cls, seed, world.device), device_ids=ids)
    return fsdp2(cls, seed, world)


def repeated_blocks(model: nn.Module) -> list[nn.Module]:
    """The blocks of the spec's repetitions (`layer2: for i in 0..2 {...}`, `h: repeat N
    Block`): the children of the outermost `nn.Sequential`s that hold parameters. Each is
    one FSDP unit, gathered just before its forward and freed after."""
    units: list[nn.Module] = []

    def visit(module: nn.Module) -> None:
        for child in module.children():
            if isinstance(child, nn.Sequential) and any(True for _ in child.parameters()):
                units.extend(c for c in child.children() if any(True for _ in c.parameters()))
            else:
                visit(child)

    visit(model)
    return units


def fsdp2(cls: type, seed: int, world: World) -> nn.Module:
    """FSDP2 as PyTorch's docs recommend for large models: build on `meta` (no memory),
    shard, materialise the local shards with `to_empty`, then load the initial weights
    from a full state dict that only rank 0 holds (broadcast to the shards)."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    mesh = init_device_mesh(world.device.type, (world.size,))
    with torch.device("meta"):
        model = cls()
    for unit in repeated_blocks(model):
        fully_shard(unit, mesh=mesh)
    fully_shard(model, mesh=mesh)
    model.to_empty(device=world.device)
    full = seeded_model(cls, seed, torch.device("cpu")).state_dict() if world.rank == 0 else {}
    options = StateDictOptions(full_state_dict=True, broadcast_from_rank0=True)
    set_model_state_dict(model, full, options=options)
    return model


def full_state_dict(engine: str, model: nn.Module) -> dict[str, torch.Tensor]:
    """Every parameter and buffer, whole, on the CPU (complete on rank 0). A collective
    under fsdp2: every rank must call it."""
    if engine == "fsdp2":
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

        options = StateDictOptions(full_state_dict=True, cpu_offload=True)
        return get_model_state_dict(model, options=options)
    inner = model.module if engine == "ddp" else model
    return {k: v.detach().cpu() for k, v in inner.state_dict().items()}


# ---- training -------------------------------------------------------------------------------------
def shard(batch: Batch, world: World) -> Batch:
    """This rank's contiguous slice of a global batch (rank r of W: rows r*n/W to (r+1)*n/W)."""
    n = batch[0].shape[0] // world.size
    return tuple(t[world.rank * n:(world.rank + 1) * n].to(world.device) for t in batch)  # type: ignore[return-value]


def optimizer(name: str, model: nn.Module, lr: float) -> torch.optim.Optimizer:
    if name == "sgd":
        return torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    return torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)


def train(args: argparse.Namespace, world: World) -> nn.Module:
    preset = PRESETS[args.model]
    cls = modelc.load(str(SPECS / preset.spec), **preset.params)
    model = wrap(args.engine, cls, args.seed, world)
    opt = optimizer(args.optim, model, args.lr)
    for step in range(args.steps):
        gen = torch.Generator().manual_seed(args.seed * 1000 + step)
        inputs, targets = shard(preset.batch(gen, args.batch), world)
        opt.zero_grad(set_to_none=True)
        loss = preset.loss(model(inputs), targets)
        loss.backward()
        opt.step()
        report(step, loss.detach(), world)
    return model


def report(step: int, loss: torch.Tensor, world: World) -> None:
    """The loss of the global batch (the mean of the ranks' means: shards are equal)."""
    if world.size > 1:
        dist.all_reduce(loss)  # a sum (gloo has no average)
        loss = loss / world.size
    if world.rank == 0:
        print(f"step {step}: loss {loss.item():.6f}", flush=True)


# ---- command line ---------------------------------------------------------------------------------
def arguments(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--engine", choices=("single", "ddp", "fsdp2"), default="ddp")
    p.add_argument("--model", choices=sorted(PRESETS), default="gpt")
    p.add_argument("--backend", choices=("gloo", "nccl"), default=None,
                   help="default: nccl when CUDA is available, else gloo")  # fmt: skip
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--batch", type=int, default=8, help="the global batch, split across the ranks")
    p.add_argument("--optim", choices=("sgd", "adamw"), default="adamw")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="where rank 0 writes the final state dict (torch.save)")
    args = p.parse_args(argv)
    args.backend = args.backend or ("nccl" if torch.cuda.is_available() else "gloo")
    return args


def main(argv: list[str] | None = None) -> None:
    args = arguments(argv)
    world = start(args.engine, args.backend)
    if args.batch % world.size:
        sys.exit(f"--batch {args.batch} does not split into {world.size} equal shards")
    model = train(args, world)
    state = full_state_dict(args.engine, model)
    if world.rank == 0:
        torch.save(state, args.out)
        print(f"wrote {len(state)} tensors to {args.out}", flush=True)
    if world.size > 1:
        dist.barrier()  # every rank is past its last collective
        dist.destroy_process_group()


# NOTE: [Exit without finalising] A gloo worker thread may still hold a finished collective
# (an all-gather, under FSDP2) whose tensors Python has let go of; if it drops it while the
# interpreter is finalising, its GIL acquisition ends the process with SIGABRT ("terminate
# called without an active exception") after all the work is done: the backtrace shows
# ProcessGroupGloo::runLoop freeing an AsyncAllgatherCoalescedWork during Py_FinalizeEx
# (PyTorch issue 190489). Seen here in 4 of 52 FSDP2 runs on 2 busy CPUs, and in none of 30
# once the processes skip finalisation with os._exit, after everything is written.
if __name__ == "__main__":
    main()
    if "RANK" in os.environ:  # under torchrun
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
