"""Rank-safe helpers for a distributed run (Lightning DDP: ``trainer=ddp``, torchrun, SLURM).

- :func:`local_rank`, :func:`global_rank`, :func:`world_size`: from ``torch.distributed`` once it is
  initialised, before that from the launcher's environment (``LOCAL_RANK``/``NODE_RANK`` from
  Lightning's launcher, ``RANK``/``WORLD_SIZE`` from torchrun, ``SLURM_PROCID``/``SLURM_NTASKS``).
- :func:`device`: the device this process encodes and mines on: ``cuda`` made to mean
  ``cuda:LOCAL_RANK`` (so two ranks never share GPU 0), or ``cpu``.
- :func:`barrier`: every rank waits here. Where the ranks were started together (torchrun, SLURM) the
  process group is initialised early for it, with the backend Lightning would pick; Lightning then
  reuses that group. Under Lightning's own launcher (``rankexp train trainer=ddp``) ranks > 0 are
  started by rank 0's ``trainer.fit``, i.e. after everything rank 0 did before it, so there is
  nothing to wait for and the call returns at once.
- :func:`gather_with_grad`: all ranks' tensors concatenated along dim 0, the gradient of the whole
  flowing back to each rank's own part (in-batch negatives across ranks).
"""

from __future__ import annotations

import os
from typing import Any, Sequence

import torch
import torch.distributed as dist


def _env_int(*names: str, default: int = 0) -> int:
    for name in names:
        value = os.environ.get(name, "")
        if value.strip().isdigit():
            return int(value)
    return default


def is_initialized() -> bool:
    return dist.is_available() and dist.is_initialized()


def local_rank() -> int:
    """This process's rank on its machine (its GPU index)."""
    return _env_int("LOCAL_RANK", "SLURM_LOCALID")


def global_rank() -> int:
    if is_initialized():
        return dist.get_rank()
    for var in ("RANK", "SLURM_PROCID"):
        if os.environ.get(var, "").isdigit():
            return int(os.environ[var])
    # Lightning's launcher: NODE_RANK and LOCAL_RANK (one process per node unless LOCAL_WORLD_SIZE says more)
    return _env_int("NODE_RANK") * max(1, _env_int("LOCAL_WORLD_SIZE", default=1)) + local_rank()


def world_size() -> int:
    if is_initialized():
        return dist.get_world_size()
    return max(1, _env_int("WORLD_SIZE", "SLURM_NTASKS", default=1))


def launched_together() -> bool:
    """All ranks were started at once by an outside launcher (torchrun, SLURM ``srun``), not by
    Lightning's launcher from rank 0."""
    return world_size() > 1 and ("TORCHELASTIC_RUN_ID" in os.environ or "SLURM_PROCID" in os.environ)


def device(accelerator: str | None) -> str:
    """``cuda`` (made to mean ``cuda:LOCAL_RANK``) when a GPU is asked for (or ``auto``) and present,
    else ``cpu``."""
    if torch.cuda.is_available() and accelerator in ("gpu", "cuda", "auto"):
        n = torch.cuda.device_count()
        torch.cuda.set_device(local_rank() % max(1, n))
        return "cuda"
    return "cpu"


def _init_early(accelerator: str | None) -> bool:
    """Initialise the process group the way Lightning would (torchrun or SLURM environment)."""
    from lightning_fabric.plugins.environments import SLURMEnvironment, TorchElasticEnvironment

    env = TorchElasticEnvironment() if TorchElasticEnvironment.detect() else SLURMEnvironment() if SLURMEnvironment.detect() else None
    if env is None:
        return False
    os.environ["MASTER_ADDR"] = env.main_address
    os.environ["MASTER_PORT"] = str(env.main_port)
    backend = "nccl" if device(accelerator) == "cuda" and dist.is_nccl_available() else "gloo"
    dist.init_process_group(backend, rank=env.global_rank(), world_size=env.world_size())
    return True


def barrier(accelerator: str | None = None) -> None:
    """Every rank waits here (see the module docstring for when that is a no-op)."""
    if not is_initialized():
        if not launched_together() or not _init_early(accelerator):
            return
    if dist.get_backend() == "nccl":
        dist.barrier(device_ids=[torch.cuda.current_device()])
    else:
        dist.barrier()


def gather_objects(obj: Any) -> list[Any]:
    """Every rank's ``obj``, in rank order (``[obj]`` outside a distributed run)."""
    if not is_initialized() or world_size() == 1:
        return [obj]
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def gather_with_grad(t):
    """All ranks' ``t`` (same shape on every rank) concatenated along dim 0, differentiable: the
    gradient of the whole is summed over ranks and each rank keeps its own part's, so with DDP's
    gradient averaging the update is that of the mean of all ranks' losses. ``t`` itself outside a
    distributed run."""
    if not is_initialized() or world_size() == 1:
        return t
    return _GatherWithGrad.apply(t)


class _GatherWithGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, t):
        parts = [torch.empty_like(t) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, t.contiguous())
        ctx.rank, ctx.n = dist.get_rank(), t.shape[0]
        return torch.cat(parts, 0)

    @staticmethod
    def backward(ctx, grad):
        grad = grad.contiguous()
        dist.all_reduce(grad)  # every rank's loss depends on every rank's part
        return grad[ctx.rank * ctx.n : (ctx.rank + 1) * ctx.n]


def gather_in_batch(docs, doc_ids: Sequence[Sequence[str]]):
    """In-batch negatives across ranks: ``(all ranks' document embeddings, all ranks' groups' doc
    ids, the offset of this rank's documents in them)``; unchanged outside a distributed run."""
    if not is_initialized() or world_size() == 1:
        return docs, [list(g) for g in doc_ids], 0
    groups = [g for part in gather_objects([list(g) for g in doc_ids]) for g in part]
    return gather_with_grad(docs), groups, global_rank() * docs.shape[0]
