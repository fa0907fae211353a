"""Sweeps: stable dry-run ids, skip/resume on re-launch (after SIGKILL), joblib cache sharing, submitit."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rankexp import api
from tests.conftest import fast_overrides


def sweep_cmd(args):
    return [sys.executable, "-m", "rankexp", "sweep", *args]


def run(args, timeout=600):
    env = dict(os.environ, RANKEXP_PROGRESS="0")
    proc = subprocess.run(sweep_cmd(args), capture_output=True, text=True, env=env, timeout=timeout)
    return proc


def index(out: Path, name: str) -> dict:
    return json.loads((out / "sweeps" / name / "sweep.json").read_text())


def test_dry_run_ids_are_stable_and_match_runs(vaswani_slice, tmp_path):
    base = fast_overrides(vaswani_slice, tmp_path)
    args = [*base, "loss=pairwise,listwise", "seed=1,2", "--name", "dry", "--dry-run"]
    first = run(args)
    assert first.returncode == 0, first.stderr
    ids1 = [m["run_id"] for m in index(tmp_path, "dry")["members"]]
    second = run(args)
    assert second.returncode == 0
    ids2 = [m["run_id"] for m in index(tmp_path, "dry")["members"]]
    assert ids1 == ids2 and len(set(ids1)) == 4
    expected = {api.rundir_for(api.compose([*base, f"loss={l}", f"seed={s}"])).run_id for l in ("pairwise", "listwise") for s in (1, 2)}
    assert set(ids1) == expected
    assert not (tmp_path / "runs").exists(), "a dry run runs nothing"


def wait_dead(rd, timeout: float = 30) -> bool:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if rd.state() == "dead":
            return True
        time.sleep(0.1)
    return False


def test_killed_member_resumes_and_complete_ones_are_skipped(vaswani_slice, tmp_path):
    out = tmp_path / "out"
    base = fast_overrides(vaswani_slice, out, **{"trainer.max_steps": 24, "train.val_every_n_steps": 4})
    args = [*base, "seed=1,2", "--name", "resume"]
    env = dict(os.environ, RANKEXP_PROGRESS="0")
    proc = subprocess.Popen(sweep_cmd(args), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    runs = out / "runs"
    deadline = time.time() + 300
    killed_dir = None
    while time.time() < deadline and killed_dir is None:
        for ckpt in runs.glob("*/checkpoints/last.ckpt") if runs.exists() else []:
            killed_dir = ckpt.parent.parent
        time.sleep(0.05)
    assert killed_dir is not None, "no checkpoint appeared"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    from rankexp.tracking.rundir import RunDir

    assert (killed_dir / "status").read_text().strip().startswith("running (pid ")
    assert wait_dead(RunDir(killed_dir)), "the killed member (its Hydra child went with the sweep) reads as dead"
    assert not (killed_dir / "metrics.json").exists()

    again = run(args)
    assert again.returncode == 0, again.stdout + again.stderr
    members = index(out, "resume")["members"]
    actions = {m["run_id"]: m["action"] for m in members}
    assert actions[killed_dir.name] == "resumed"
    assert all(m["status"] == "complete" for m in members) and len(members) == 2
    hist = [json.loads(l) for l in (killed_dir / "history.jsonl").read_text().splitlines()]
    assert max(h["step"] for h in hist) >= 20

    third = run(args)
    assert third.returncode == 0
    assert {m["action"] for m in index(out, "resume")["members"]} == {"skipped"}

    # the resumed run equals an uninterrupted run of the same config (tiny model has no dropout)
    cfg_overrides = next(m["overrides"] for m in members if m["run_id"] == killed_dir.name)
    fresh = api.train(api.compose([o.replace(str(out), str(tmp_path / "fresh")) for o in cfg_overrides]))
    assert fresh.run_id == killed_dir.name
    assert (fresh.path / "run.trec").read_text() == (killed_dir / "run.trec").read_text()


def test_joblib_members_share_the_cache(vaswani_slice, tmp_path):
    proc = run([*fast_overrides(vaswani_slice, tmp_path), "seed=1,2", "--name", "par", "--launcher", "joblib", "--jobs", "2"])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    members = index(tmp_path, "par")["members"]
    assert [m["status"] for m in members] == ["complete", "complete"]
    for kind in ("bm25_index", "bm25_run", "tokens"):
        entries = [p for p in (tmp_path / "cache" / kind).iterdir() if p.is_dir()]
        assert len(entries) == 1, (kind, entries)
        assert (entries[0] / ".complete").exists()
        built = [e for m in members for e in json.loads((Path(m["run_dir"]) / "metrics.json").read_text())["cache"]
                 if e["kind"] == kind and not e["hit"]]
        assert len(built) == 1, f"{kind} built {len(built)} times"


def test_submitit_local_launches_a_member(vaswani_slice, tmp_path):
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    proc = run([*fast_overrides(vaswani_slice, tmp_path, **{"trainer.max_steps": 2, "train.val_every_n_steps": 2}),
                "seed=3", "--name", "sub", "--launcher", "submitit_local"])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (member,) = index(tmp_path, "sub")["members"]
    assert member["status"] == "complete"
    assert list((tmp_path / "sweeps" / "sub" / "submitit").rglob("*_submitted.pkl"))


def test_ddp_in_a_multirun_is_refused(vaswani_slice, tmp_path):
    proc = run([*fast_overrides(vaswani_slice, tmp_path), "trainer=ddp", "seed=1,2", "--dry-run"])
    assert proc.returncode != 0
    assert "ddp_spawn" in proc.stderr and "Traceback" not in proc.stderr


def test_optuna_sweeper_runs_trials(vaswani_slice, tmp_path):
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper")
    proc = run([*fast_overrides(vaswani_slice, tmp_path, **{"trainer.max_steps": 2, "train.val_every_n_steps": 2}),
                "hydra/sweeper=optuna", "hydra.sweeper.n_trials=2", "hydra.sweeper.direction=maximize",
                "model.lr=interval(1e-4,1e-2)", "--name", "opt"])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    members = index(tmp_path, "opt")["members"]
    assert len(members) == 2 and all(m["status"] == "complete" for m in members)
    lrs = [float(o.split("=")[1]) for m in members for o in m["overrides"] if o.startswith("model.lr=")]
    assert len(lrs) == 2 and all(1e-4 <= lr <= 1e-2 for lr in lrs)
    assert list((tmp_path / "sweeps" / "opt" / "hydra").glob("optimization_results.yaml"))
