"""Distributed data parallel on 2 CPU processes (gloo): a run killed after a dev evaluation resumes and
ends exactly as an uninterrupted 2-process run; the rank helpers and the world-size aware sampler."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from tests.conftest import fast_overrides, wait_for

# (rankexp's heavier modules are imported inside the tests: the gather test's spawned processes
# import this module, and should not pay for Lightning)

DDP = {"trainer": "ddp", "trainer.accelerator": "cpu", "trainer.devices": 2, "trainer.max_steps": 12,
       "train.val_every_n_steps": 3}


def env(**extra) -> dict:
    return dict(os.environ, RANKEXP_PROGRESS="0", RANKEXP_THREADS="1", OMP_NUM_THREADS="1", **extra)


def cli(*args) -> list[str]:
    return [sys.executable, "-m", "rankexp", *args]


def dev_steps(rd) -> list[int]:
    hist = [json.loads(l) for l in (rd / "history.jsonl").read_text().splitlines()]
    return [h["step"] for h in hist if "val/nDCG@10" in h]


def test_resume_sampler_shares_and_resumes():
    from rankexp.models.datamodule import ResumeSampler

    # 2 ranks, 12 groups: rank r takes r, r+2, ...; 4 groups done by both together = 2 of each rank's
    assert list(ResumeSampler(12, 0, 2, 0)) == [0, 2, 4, 6, 8, 10]
    assert list(ResumeSampler(12, 4, 2, 0)) == [4, 6, 8, 10] and list(ResumeSampler(12, 4, 2, 1)) == [5, 7, 9, 11]
    assert len(ResumeSampler(12, 4, 2, 1)) == 6  # the epoch keeps its length on resume
    assert len(ResumeSampler(13, 0, 2, 0)) == len(ResumeSampler(13, 0, 2, 1)) == 6  # equal steps on every rank
    assert list(ResumeSampler(5, 2)) == [2, 3, 4] and len(ResumeSampler(5, 2)) == 5  # one process: as before


def test_rank_helpers_outside_a_distributed_run(monkeypatch):
    from rankexp import distributed as d

    for var in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "NODE_RANK", "SLURM_PROCID", "SLURM_NTASKS", "TORCHELASTIC_RUN_ID"):
        monkeypatch.delenv(var, raising=False)
    assert (d.world_size(), d.global_rank(), d.local_rank(), d.launched_together()) == (1, 0, 0, False)
    d.barrier("cpu")  # a no-op outside a distributed run
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert (d.world_size(), d.global_rank(), d.local_rank(), d.launched_together()) == (2, 1, 1, False)
    assert d.device("cpu") == "cpu"


@pytest.mark.slow
def test_ddp_run_killed_after_a_dev_evaluation_resumes_and_finishes(vaswani_slice, tmp_path):
    from rankexp import api

    ref_out, out = tmp_path / "reference", tmp_path / "killed"
    reference = subprocess.run(cli("train", *fast_overrides(vaswani_slice, ref_out, **DDP)), capture_output=True, text=True,
                               env=env(), timeout=900)
    assert reference.returncode == 0, reference.stderr[-3000:]
    ref = next((ref_out / "runs").iterdir())
    assert dev_steps(ref) == [0, 3, 6, 9, 12]

    ovr = fast_overrides(vaswani_slice, out, **DDP)
    rd = api.rundir_for(api.compose(ovr))
    proc = subprocess.Popen(cli("train", *ovr), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True,
                            env=env(RANKEXP_TEST_STEP_DELAY_S="0.5"), start_new_session=True)
    try:
        assert wait_for(lambda: (rd.checkpoints / "last.ckpt").exists() and (rd.path / "history.jsonl").exists()
                        and 3 in dev_steps(rd.path), timeout=400.0, step=0.1), "no dev evaluation was reached"
        time.sleep(1.0)  # mid-way to the next evaluation
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # both ranks at once, as a node failure would
        proc.wait()
    assert not (rd.path / "metrics.json").exists() and rd.state() == "dead"
    assert dev_steps(rd.path)[-1] < 12
    before = (rd.path / "history.jsonl").read_text()

    again = subprocess.run(cli("train", *ovr), capture_output=True, text=True, env=env(), timeout=900)
    assert again.returncode == 0, again.stderr[-3000:]
    assert rd.status() == "complete"
    assert (rd.path / "history.jsonl").read_text().startswith(before), "resumed (a fresh start clears the history)"
    assert dev_steps(rd.path) == [0, 3, 6, 9, 12], "no dev evaluation lost or repeated"
    assert (rd.path / "run.trec").read_text() == (ref / "run.trec").read_text()
    m, r = json.loads((rd.path / "metrics.json").read_text()), json.loads((ref / "metrics.json").read_text())
    assert m["model"] == r["model"] and m["dev"]["best_step"] == r["dev"]["best_step"]


def _gather_worker(rank: int, world: int, init: str, out: str) -> None:
    import torch
    import torch.distributed as dist

    from rankexp import distributed as d

    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    try:
        x = torch.arange(6, dtype=torch.float32).view(3, 2).add(10 * rank).requires_grad_(True)  # this rank's rows
        y = d.gather_with_grad(x)  # [world*3, 2]
        weights = torch.arange(world * 6, dtype=torch.float32).view(world * 3, 2) * (rank + 1)  # each rank's own loss
        (y * weights).sum().backward()
        docs, groups, first = d.gather_in_batch(x.detach(), [[f"r{rank}g{i}a", f"r{rank}g{i}b"] for i in range(3)])
        torch.save({"y": y.detach(), "grad": x.grad, "groups": groups, "first": first, "rank": d.global_rank(),
                    "world": d.world_size(), "docs": docs}, f"{out}/{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_gather_with_grad_on_two_gloo_processes(tmp_path):
    import torch
    import torch.multiprocessing as mp

    world = 2
    mp.spawn(_gather_worker, args=(world, f"file://{tmp_path / 'store'}", str(tmp_path)), nprocs=world, join=True)
    res = [torch.load(tmp_path / f"{r}.pt") for r in range(world)]
    full = torch.cat([torch.arange(6, dtype=torch.float32).view(3, 2) + 10 * r for r in range(world)])
    weights = torch.arange(world * 6, dtype=torch.float32).view(world * 3, 2)
    for r, got in enumerate(res):
        assert got["rank"] == r and got["world"] == world
        assert torch.equal(got["y"], full)  # every rank sees every rank's rows, in rank order
        # d(sum over ranks of each rank's loss)/d(this rank's rows): the weights of all ranks, summed
        assert torch.equal(got["grad"], (weights * sum(k + 1 for k in range(world)))[3 * r : 3 * r + 3])
        assert got["first"] == 3 * r and got["groups"][3 * r] == [f"r{r}g0a", f"r{r}g0b"] and len(got["groups"]) == 6


@pytest.mark.slow
def test_ddp_bi_encoder_with_gathered_negatives_equals_one_process_with_the_whole_batch(vaswani_slice, tmp_path):
    """2 ranks × 2 groups with in-batch negatives gathered across ranks train as 1 process × 4 groups:
    the same groups per step (rank r takes r, r+2, …), the same softmax over all 4 groups' documents,
    the mean of the ranks' losses; so the same test ranking (scores to float noise) and dev curve.
    Measured: with ``model.encoder.gather_negatives=false`` (per-rank negatives) the dev curve differs."""
    steps = {"model": "tiny_bi", "trainer.max_steps": 6, "train.val_every_n_steps": 3}
    ddp = fast_overrides(vaswani_slice, tmp_path / "ddp", **{**steps, **{k: v for k, v in DDP.items() if k.startswith("trainer")},
                                                              "trainer.max_steps": 6, "train.batch_size": 2})
    one = fast_overrides(vaswani_slice, tmp_path / "one", **{**steps, "train.batch_size": 4})
    for ovr in (ddp, one):
        res = subprocess.run(cli("train", *ovr), capture_output=True, text=True, env=env(), timeout=900)
        assert res.returncode == 0, res.stderr[-3000:]
    a, b = (next((tmp_path / name / "runs").iterdir()) for name in ("ddp", "one"))
    dev = lambda rd: [(h["step"], round(h["val/nDCG@10"], 6)) for h in map(json.loads, (rd / "history.jsonl").read_text().splitlines())
                      if "val/nDCG@10" in h]
    assert dev(a) == dev(b) and len(dev(a)) == 3
    ra, rb = [l.split() for l in (a / "run.trec").read_text().splitlines()], [l.split() for l in (b / "run.trec").read_text().splitlines()]
    assert [l[:4] for l in ra] == [l[:4] for l in rb]  # query, Q0, document, rank
    assert max(abs(float(x[4]) - float(y[4])) for x, y in zip(ra, rb)) < 1e-5
    ma, mb = json.loads((a / "metrics.json").read_text())["model"], json.loads((b / "metrics.json").read_text())["model"]
    assert ma == pytest.approx(mb, abs=1e-9)


BARRIER_SCRIPT = """
import sys, time
from pathlib import Path
from rankexp import distributed as d
flag = Path(sys.argv[1])
if d.global_rank() == 0:
    time.sleep(1.5)  # rank 0 settles the run directory first (api.train: --force, a damaged last.ckpt)
    flag.write_text("settled")
d.barrier("cpu")
seen = flag.exists()
Path(f"{flag}.{d.global_rank()}").write_text(f"{seen} {d.world_size()} {d.launched_together()} {d.is_initialized()}")
"""


def test_barrier_under_torchrun_waits_for_rank_zero(tmp_path):
    """torchrun starts both ranks at once: rank 1 passes the barrier only after rank 0's work before it."""
    import shutil

    torchrun = shutil.which("torchrun")
    if torchrun is None:
        pytest.skip("torchrun not installed")
    script = tmp_path / "barrier.py"
    script.write_text(BARRIER_SCRIPT)
    flag = tmp_path / "flag"
    with socket.socket() as s:  # a free port for the rendezvous
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    res = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
                          "--master_port", str(port), str(script), str(flag)], capture_output=True, text=True, env=env(), timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    for rank in (0, 1):
        assert (tmp_path / f"flag.{rank}").read_text() == "True 2 True True"
