"""Fault injection: signals, kill -9, two processes on one run, full disks, damaged checkpoints, W&B
failures, a killed sweep. Every interrupted run is re-run and must end with the ``run.trec`` of an
uninterrupted run of the same config (the tiny model has no dropout; groups are fixed by the seed).

Fast ones run in the default suite; the ones that start ``rankexp`` subprocesses are marked slow.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rankexp import api
from rankexp.tracking import lifecycle as lc
from rankexp.tracking.rundir import STATUS_BYTES, RunDir
from tests.conftest import fast_overrides, wait_for

STEPS = {"trainer.max_steps": 12, "train.val_every_n_steps": 3}


def env(**extra) -> dict:
    return dict(os.environ, RANKEXP_PROGRESS="0", RANKEXP_THREADS="1", OMP_NUM_THREADS="1", **extra)


def cli(*args) -> list[str]:
    return [sys.executable, "-m", "rankexp", *args]


@pytest.fixture(scope="module")
def reference(vaswani_slice, tmp_path_factory):
    """An uninterrupted run of the config the fault tests interrupt."""
    out = tmp_path_factory.mktemp("reference")
    res = api.train(api.compose(fast_overrides(vaswani_slice, out, **STEPS)))
    return res.path


def dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


# ------------------------------------------------------------------ status, heartbeat, dead owners


def test_status_is_padded_and_reads_back(tmp_path):
    rd = RunDir(tmp_path / "r")
    rd.path.mkdir()
    rd.set_status("running")
    assert (rd.path / "status").stat().st_size == STATUS_BYTES
    o = rd.owner()
    assert o["pid"] == os.getpid() and o["host"] == socket.gethostname()
    assert rd.state() == "running" and rd.describe().startswith(f"running (pid {os.getpid()}, host ")
    rd.set_status("failed", "interrupted (SIGTERM)")
    assert (rd.path / "status").read_text().strip() == "failed: interrupted (SIGTERM)"
    assert rd.state() == "failed" and (rd.path / "status").stat().st_size == STATUS_BYTES


def test_dead_owner_is_detected(tmp_path, monkeypatch):
    rd = RunDir(tmp_path / "r")
    rd.path.mkdir()
    now = lc.utc_now()
    status = rd.path / "status"
    status.write_text(f"running (pid {dead_pid()}, host {socket.gethostname()}, since {now}, heartbeat {now})\n")
    assert rd.raw_state() == "running" and rd.state() == "dead"
    assert rd.describe().startswith("dead (pid ") and "train again to resume" in rd.describe()
    # another host: judged by the heartbeat's age
    old = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 3600))
    status.write_text(f"running (pid 1, host elsewhere-node, since {old}, heartbeat {old})\n")
    assert rd.state() == "dead"
    status.write_text(f"running (pid 1, host elsewhere-node, since {old}, heartbeat {lc.utc_now()})\n")
    assert rd.state() == "running"
    monkeypatch.setenv("RANKEXP_STALE_S", "0.5")
    time.sleep(1.6)
    assert rd.state() == "dead"


def test_heartbeat_refreshes_the_status(tmp_path):
    rd = RunDir(tmp_path / "r")
    rd.path.mkdir()
    rd.set_status("running")
    first = rd.owner()["heartbeat_ts"]
    with lc.Heartbeat(rd, interval=0.2):
        assert wait_for(lambda: rd.owner()["heartbeat_ts"] > first, timeout=5)
        rd.set_status("complete")
        time.sleep(0.5)  # a beat after the final status never brings back "running"
    assert rd.status() == "complete"


# ------------------------------------------------------------------ the run lock


def test_second_process_on_a_run_refuses_with_one_line(vaswani_slice, tmp_path):
    ovr = fast_overrides(vaswani_slice, tmp_path, **STEPS)
    rd = api.rundir_for(api.compose(ovr))
    with lc.RunLock(rd.path).acquire():
        assert not lc.RunLock(rd.path)._try(), "one process never takes its own run twice"
        proc = subprocess.run(cli("train", *ovr), capture_output=True, text=True, env=env(), timeout=300)
        assert proc.returncode == lc.RunLocked.exit_code, proc.stdout + proc.stderr
        lines = [l for l in proc.stderr.splitlines() if l.strip()]
        assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
        assert f"run {rd.run_id} is being trained by pid {os.getpid()} on host {socket.gethostname()} since " in lines[0]
        assert "wait" in lines[0] and "another seed" in lines[0]
        assert not (rd.path / "status").exists(), "the refused process wrote nothing"
        # waiting, with a bound: still refused after it
        t0 = time.monotonic()
        with pytest.raises(lc.RunLocked, match="is being trained by pid"):
            lc.RunLock(rd.path).acquire(wait=0.3, poll_s=0.1)
        assert time.monotonic() - t0 >= 0.3
    # released: a new owner gets it
    with lc.RunLock(rd.path).acquire():
        pass


# ------------------------------------------------------------------ checkpoints and full disks


def test_atomic_checkpoint_and_damage_check(tmp_path):
    import torch

    p = tmp_path / "last.ckpt"
    lc.save_atomic({"w": torch.arange(1000)}, p)
    assert lc.checkpoint_ok(p) == (True, "")
    assert not list(tmp_path.glob("*.tmp"))
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])  # what a full disk or a crash mid-write used to leave
    ok, why = lc.checkpoint_ok(p)
    assert not ok and "truncated" in why
    p.write_bytes(b"")
    assert lc.checkpoint_ok(p) == (False, "empty file")


def test_checkpoint_save_on_a_full_disk_keeps_the_old_one(tmp_path, monkeypatch):
    import torch

    p = tmp_path / "last.ckpt"
    lc.save_atomic({"step": 1}, p)
    before = p.read_bytes()

    def no_space(obj, fh, *a, **k):
        fh.write(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", no_space)
    with pytest.raises(lc.DiskFullError, match=f"disk full while writing {p}"):
        lc.save_atomic({"step": 2}, p)
    assert p.read_bytes() == before and not list(tmp_path.glob("*.tmp"))


@pytest.fixture
def small_fs(tmp_path):
    """A 1 MiB tmpfs (root only); skipped where mounting is not permitted."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)], capture_output=True)
    if proc.returncode != 0:
        pytest.skip("cannot mount a small tmpfs here (not root?)")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def fill(folder: Path) -> None:
    """Write until the file system refuses even 512 bytes."""
    for i, chunk in enumerate((65536, 512)):
        fd = os.open(folder / f"filler{i}", os.O_WRONLY | os.O_CREAT)
        try:
            while True:
                os.write(fd, b"\0" * chunk)
        except OSError as e:
            assert e.errno == errno.ENOSPC
        finally:
            os.close(fd)


def test_status_and_errors_on_a_really_full_disk(small_fs):
    from rankexp.utils.io import write_json

    rd = RunDir(small_fs / "run")
    rd.path.mkdir()
    rd.set_status("running")
    fill(small_fs)
    with pytest.raises(lc.DiskFullError, match=f"disk full while writing {rd.path / 'metrics.json'}"):
        write_json(rd.path / "metrics.json", {"x": list(range(10000))})
    with pytest.raises(lc.DiskFullError, match="disk full while writing .*last.ckpt"):
        lc.save_atomic({"x": b"\0" * 100000}, rd.checkpoints / "last.ckpt")
    inode = (rd.path / "status").stat().st_ino
    rd.set_status("failed", "disk full while writing last.ckpt (ENOSPC)")  # fits in the blocks it owns
    assert (rd.path / "status").stat().st_ino == inode, "overwritten in place (no new file could be written)"
    assert rd.status() == "failed: disk full while writing last.ckpt (ENOSPC)"
    assert not list(rd.path.rglob("*.tmp")) and not list(rd.path.rglob(".*.tmp"))


def test_disk_full_during_training_is_one_line_and_failed(vaswani_slice, tmp_path, monkeypatch):
    """ENOSPC while Lightning saves a checkpoint: DiskFullError naming the file, status failed."""
    real = lc.save_atomic

    def full_at_last(obj, path):
        if Path(path).name == "last.ckpt":
            raise lc.disk_full_error(OSError(errno.ENOSPC, "No space left on device"), path)
        return real(obj, path)

    from rankexp.tracking import checkpoint_files  # where SafeCheckpointIO looks save_atomic up

    monkeypatch.setattr(checkpoint_files, "save_atomic", full_at_last)
    cfg = api.compose(fast_overrides(vaswani_slice, tmp_path, **STEPS))
    with pytest.raises(lc.DiskFullError, match="disk full while writing .*last.ckpt") as e:
        api.train(cfg)
    rd = api.rundir_for(cfg)
    assert rd.status() == f"failed: {e.value}"
    assert not (rd.checkpoints / "last.ckpt").exists() and not list(rd.checkpoints.glob("*.tmp"))


def test_damaged_last_checkpoint_is_moved_aside_and_the_run_restarts(vaswani_slice, tmp_path, reference, capsys):
    cfg = api.compose(fast_overrides(vaswani_slice, tmp_path, **STEPS))
    rd = api.rundir_for(cfg)
    rd.checkpoints.mkdir(parents=True)
    good = reference / "checkpoints" / "best.ckpt"
    (rd.checkpoints / "last.ckpt").write_bytes(good.read_bytes()[:5000])  # cut short
    (rd.checkpoints / "last.ckpt.tmp").write_bytes(b"half a save")  # left by a crash
    (rd.path / "status").write_text("running\n")
    res = api.train(cfg)
    err = capsys.readouterr().err
    assert "last.ckpt: not a complete torch checkpoint" in err and "moved aside to last.ckpt.corrupt" in err
    assert (rd.checkpoints / "last.ckpt.corrupt").exists() and not (rd.checkpoints / "last.ckpt.tmp").exists()
    assert rd.status() == "complete"
    assert (res.path / "run.trec").read_text() == (reference / "run.trec").read_text()


def test_sigterm_in_process_saves_and_resumes_exactly(vaswani_slice, tmp_path, reference, monkeypatch):
    """SIGTERM after the first dev evaluation (sent to this process from a thread; Python runs the
    handler in the main thread): Interrupted (exit code 143), failed: interrupted (SIGTERM), a
    checkpoint mid-interval; the re-run resumes from it with the same dev schedule and run.trec."""
    import threading

    monkeypatch.setenv("RANKEXP_TEST_STEP_DELAY_S", "0.3")
    cfg = api.compose(fast_overrides(vaswani_slice, tmp_path, **STEPS))
    rd = api.rundir_for(cfg)
    hist = rd.path / "history.jsonl"
    done = threading.Event()

    def send():
        if wait_for(lambda: done.is_set() or (hist.exists() and '{"step": 3, "val/' in hist.read_text()), timeout=300, step=0.02):
            time.sleep(0.45)  # into the next interval (steps take >= 0.3 s): a mid-interval checkpoint
            if not done.is_set():
                os.kill(os.getpid(), signal.SIGTERM)

    before_term, before_int = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    t = threading.Thread(target=send, daemon=True)
    t.start()
    try:
        with pytest.raises(lc.Interrupted) as e:
            api.train(cfg)
    finally:
        done.set()
        t.join()
    assert e.value.exit_code == 143 and "checkpoint saved at step" in str(e.value)
    assert rd.status() == "failed: interrupted (SIGTERM)"
    state = __import__("torch").load(rd.checkpoints / "last.ckpt", map_location="cpu", weights_only=False)
    assert 3 <= state["global_step"] < 12, "saved where the signal came, after the first dev evaluation"
    assert signal.getsignal(signal.SIGTERM) == before_term and signal.getsignal(signal.SIGINT) == before_int, "handlers restored"
    monkeypatch.delenv("RANKEXP_TEST_STEP_DELAY_S")
    res = api.train(cfg)
    assert rd.status() == "complete"
    records = [json.loads(l) for l in hist.read_text().splitlines()]
    assert [h["step"] for h in records if "val/nDCG@10" in h] == [0, 3, 6, 9, 12]  # step 0: the untrained start, once
    assert {"event": "resumed", "step": state["global_step"]} in records
    assert (res.path / "run.trec").read_text() == (reference / "run.trec").read_text()


# ------------------------------------------------------------------ W&B


@pytest.mark.wandb
def test_failed_member_does_not_swallow_the_next_wandb_run(vaswani_slice, tmp_path, monkeypatch):
    import pytorch_lightning as pl
    import wandb

    monkeypatch.setenv("WANDB_MODE", "offline")
    small = {"trainer.max_steps": 2, "train.val_every_n_steps": 2}
    real_fit = pl.Trainer.fit

    def broken_fit(self, *a, **k):
        raise RuntimeError("boom in fit")

    monkeypatch.setattr(pl.Trainer, "fit", broken_fit)
    cfg1 = api.compose(fast_overrides(vaswani_slice, tmp_path, logger="wandb", seed=1, **small))
    with pytest.raises(RuntimeError, match="boom"):
        api.train(cfg1)
    assert wandb.run is None, "the failed member's W&B run is finished"
    monkeypatch.setattr(pl.Trainer, "fit", real_fit)
    cfg2 = api.compose(fast_overrides(vaswani_slice, tmp_path, logger="wandb", seed=2, **small))
    res2 = api.train(cfg2)
    rid1 = api.rundir_for(cfg1).run_id
    assert res2.run_id != rid1
    own = list((tmp_path / "wandb").glob(f"offline-run-*-{res2.run_id}"))
    assert own and list(own[0].glob("*.wandb")), "the second member has its own offline run"
    assert len(list((tmp_path / "wandb").glob(f"offline-run-*-{rid1}"))) == 1
    assert wandb.run is None


@pytest.mark.wandb
def test_unreachable_wandb_server_falls_back_to_offline_fast(tmp_path, monkeypatch, capsys):
    from rankexp.tracking.loggers import build_logger, finish_all

    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)  # "logged in": online mode is chosen
    monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")  # loopback, nothing listens (discard port)
    for v in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY"):
        monkeypatch.delenv(v, raising=False)
    t0 = time.monotonic()
    logger = build_logger({"kind": "wandb"}, "fallback01", tmp_path / "run", tmp_path, {"a": 1}, [])
    elapsed = time.monotonic() - t0
    try:
        assert logger, "a logger, offline"
        logger.log_metrics({"x": 1.0}, step=1)
    finally:
        finish_all(0)
    err = [l for l in capsys.readouterr().err.splitlines() if "W&B" in l]
    assert len(err) == 1 and "http://127.0.0.1:9 unreachable" in err[0] and "rankexp wandb sync fallback01" in err[0]
    assert elapsed < 30, f"fallback took {elapsed:.1f}s"
    runs = list((tmp_path / "wandb").glob("offline-run-*-fallback01"))
    assert runs and list(runs[0].glob("*.wandb"))


# ------------------------------------------------------------------ signals and kill -9 (subprocesses)


def start_train(ovr, **extra_env) -> subprocess.Popen:
    return subprocess.Popen(cli("train", *ovr), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env(**extra_env), start_new_session=True)


def phase_reached(rd: RunDir, phase: str):
    if phase == "prepare":  # the run has started: status written, data being prepared
        return lambda: rd.raw_state() == "running"
    return lambda: (rd.path / "history.jsonl").exists() and '{"step": 3, "val/' in (rd.path / "history.jsonl").read_text()


@pytest.mark.slow
@pytest.mark.parametrize("phase,sig", [("prepare", signal.SIGTERM), ("trained", signal.SIGTERM), ("trained", signal.SIGINT)])
def test_signal_then_rerun_equals_uninterrupted(vaswani_slice, tmp_path, reference, phase, sig):
    ovr = fast_overrides(vaswani_slice, tmp_path, **STEPS)
    rd = api.rundir_for(api.compose(ovr))
    proc = start_train(ovr, RANKEXP_TEST_STEP_DELAY_S="0.4")
    assert wait_for(phase_reached(rd, phase)), "the phase was not reached"
    os.kill(proc.pid, sig)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 128 + sig, out + err
    name = signal.Signals(sig).name
    lines = [l for l in err.splitlines() if l.strip()]
    assert lines[-1].startswith(f"interrupted: {name}") and "Traceback" not in err, err
    assert rd.status() == f"failed: interrupted ({name})"
    assert not (rd.path / "metrics.json").exists()
    if phase == "trained":
        assert (rd.checkpoints / "last.ckpt").exists() and lc.checkpoint_ok(rd.checkpoints / "last.ckpt")[0]
    again = subprocess.run(cli("train", *ovr), capture_output=True, text=True, env=env(), timeout=600)
    assert again.returncode == 0, again.stderr
    assert rd.status() == "complete"
    assert (rd.path / "run.trec").read_text() == (reference / "run.trec").read_text()
    hist = [json.loads(l) for l in (rd.path / "history.jsonl").read_text().splitlines()]
    steps = [h["step"] for h in hist if "val/nDCG@10" in h]
    assert steps == sorted(set(steps)) == [0, 3, 6, 9, 12], "no dev evaluation lost or repeated (step 0: the start)"


@pytest.mark.slow
def test_kill9_reads_dead_and_rerun_equals_uninterrupted(vaswani_slice, tmp_path, reference):
    ovr = fast_overrides(vaswani_slice, tmp_path, **STEPS)
    rd = api.rundir_for(api.compose(ovr))
    proc = start_train(ovr, RANKEXP_TEST_STEP_DELAY_S="0.4")
    assert wait_for(lambda: (rd.checkpoints / "last.ckpt").exists())
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate()
    assert rd.raw_state() == "running" and rd.state() == "dead"
    again = subprocess.run(cli("train", *ovr), capture_output=True, text=True, env=env(), timeout=600)
    assert again.returncode == 0, again.stderr
    assert (rd.path / "run.trec").read_text() == (reference / "run.trec").read_text()


@pytest.mark.slow
def test_two_live_trainings_one_refuses(vaswani_slice, tmp_path):
    ovr = fast_overrides(vaswani_slice, tmp_path, **STEPS)
    rd = api.rundir_for(api.compose(ovr))
    first = start_train(ovr, RANKEXP_TEST_STEP_DELAY_S="4")  # ~50 s of training: the second starts meanwhile
    assert wait_for(lambda: rd.raw_state() == "running")
    second = subprocess.run(cli("train", *ovr), capture_output=True, text=True, env=env(), timeout=300)
    assert first.poll() is None, "the first training ended before the second started (machine too slow)"
    assert second.returncode == lc.RunLocked.exit_code
    assert f"is being trained by pid {first.pid}" in second.stderr
    waiting = subprocess.run(cli("train", *ovr, "--wait"), capture_output=True, text=True, env=env(), timeout=600)
    assert waiting.returncode == 0 and "already complete" in waiting.stdout, waiting.stderr
    first.communicate(timeout=300)
    assert first.returncode == 0
    hist = [json.loads(l) for l in (rd.path / "history.jsonl").read_text().splitlines()]
    assert [h["step"] for h in hist if "val/nDCG@10" in h] == [0, 3, 6, 9, 12], "one writer"


def children_of(pid: int) -> list[int]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


@pytest.mark.slow
def test_sweep_sigterm_stops_its_child_and_relaunch_completes(vaswani_slice, tmp_path, reference):
    out = tmp_path / "out"
    args = [*fast_overrides(vaswani_slice, out, **STEPS), "seed=42,7", "--name", "term"]
    proc = subprocess.Popen(cli("sweep", *args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env(RANKEXP_TEST_STEP_DELAY_S="0.4"))
    runs = out / "runs"
    assert wait_for(lambda: runs.exists() and any(runs.glob("*/checkpoints/last.ckpt")))
    kids = children_of(proc.pid)
    assert kids, "the sweep runs its members in a child process"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 143, err
    assert "interrupted: SIGTERM" in err
    for k in kids:
        assert not Path(f"/proc/{k}").exists() or "Z" in Path(f"/proc/{k}/stat").read_text().rsplit(")", 1)[1].split()[0]
    index = json.loads((out / "sweeps" / "term" / "sweep.json").read_text())
    failed = [m for m in index["members"] if m["status"] == "failed"]
    assert len(failed) == 1 and failed[0]["reason"].startswith("interrupted (SIGTERM)")
    assert RunDir(Path(failed[0]["run_dir"])).status() == "failed: interrupted (SIGTERM)"
    again = subprocess.run(cli("sweep", *args), capture_output=True, text=True, env=env(), timeout=900)
    assert again.returncode == 0, again.stdout + again.stderr
    index = json.loads((out / "sweeps" / "term" / "sweep.json").read_text())
    assert [m["status"] for m in index["members"]] == ["complete", "complete"]
    assert {m["action"] for m in index["members"] if m["run_id"] == failed[0]["run_id"]} == {"resumed"}
    seed42 = next(m for m in index["members"] if "seed=42" in m["overrides"])
    assert (Path(seed42["run_dir"]) / "run.trec").read_text() == (reference / "run.trec").read_text()
