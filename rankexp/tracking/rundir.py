"""The run directory contract (DESIGN.md): ``outputs/runs/<run_id>/``.

config.yaml · overrides.txt · env.json · split.json · run.trec · metrics.json · perquery.tsv ·
history.jsonl · checkpoints/ · status. Every file is written atomically; results are written only
at the end, after which ``status`` becomes ``complete``. ``status`` holds one line: ``running``,
``complete`` or ``failed: <reason>``.
"""

from __future__ import annotations

import json
import os
import platform
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from omegaconf import DictConfig, OmegaConf

from rankexp.utils.io import atomic_open, read_json, write_json, write_text

RESULT_FILES = ("run.trec", "metrics.json", "perquery.tsv")


@dataclass
class RunDir:
    """``readonly`` run directories (non-zero ranks of a distributed run) write nothing."""

    path: Path
    readonly: bool = False

    def __post_init__(self):
        self.path = Path(self.path)

    @property
    def run_id(self) -> str:
        return self.path.name

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    def status(self) -> str | None:
        f = self.path / "status"
        return f.read_text().strip() if f.exists() else None

    def state(self) -> str | None:
        s = self.status()
        return s.split(":", 1)[0] if s else None

    def is_complete(self) -> bool:
        return self.state() == "complete" and (self.path / "metrics.json").exists()

    def set_status(self, state: str, reason: str | None = None) -> None:
        if self.readonly:
            return
        write_text(self.path / "status", f"{state}: {reason}\n" if reason else f"{state}\n")

    def start(self, cfg: DictConfig, overrides: Sequence[str], seed: int) -> None:
        if self.readonly:
            return
        self.path.mkdir(parents=True, exist_ok=True)
        for name in RESULT_FILES:  # never leave results of an earlier attempt beside a new one
            (self.path / name).unlink(missing_ok=True)
        write_text(self.path / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True))
        write_text(self.path / "overrides.txt", "".join(f"{o}\n" for o in overrides))
        write_json(self.path / "env.json", environment(seed))
        self.set_status("running")

    def metrics(self) -> dict:
        return read_json(self.path / "metrics.json")

    def write_json(self, name: str, obj: Any) -> None:
        if self.readonly:
            return
        write_json(self.path / name, obj)

    def write_perquery(self, systems: Mapping[str, Mapping[str, Mapping[str, float]]]) -> None:
        """``systems``: system -> measure -> qid -> value, written as a long TSV."""
        if self.readonly:
            return
        from rankexp.data.collection import natural_sorted

        with atomic_open(self.path / "perquery.tsv") as fh:
            fh.write("system\tmeasure\tquery_id\tvalue\n")
            for system, measures in systems.items():
                for measure, values in measures.items():
                    for qid in natural_sorted(values):
                        fh.write(f"{system}\t{measure}\t{qid}\t{values[qid]!r}\n")

    def append_history(self, record: Mapping[str, Any]) -> None:
        if self.readonly:
            return
        with open(self.path / "history.jsonl", "a", encoding="utf-8") as fh:
            fh.write(json.dumps(record, default=float) + "\n")


def process_rank() -> int:
    """Global rank of this process in a distributed launch (0 outside one): Lightning's ddp
    launcher sets LOCAL_RANK/NODE_RANK for the processes it starts, SLURM sets SLURM_PROCID."""
    for var in ("RANK", "SLURM_PROCID"):
        if os.environ.get(var, "").isdigit() and int(os.environ[var]) > 0:
            return int(os.environ[var])
    return int(os.environ.get("NODE_RANK", "0") or 0) + int(os.environ.get("LOCAL_RANK", "0") or 0)


def read_perquery(path: Path) -> dict[str, dict[str, dict[str, float]]]:
    out: dict[str, dict[str, dict[str, float]]] = {}
    with open(path, encoding="utf-8") as fh:
        next(fh)
        for line in fh:
            system, measure, qid, value = line.rstrip("\n").split("\t")
            out.setdefault(system, {}).setdefault(measure, {})[qid] = float(value)
    return out


def _git_commit() -> str | None:
    try:
        here = Path(__file__).resolve().parent
        return subprocess.run(["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5).stdout.strip() or None
    except Exception:
        return None


def environment(seed: int) -> dict[str, Any]:
    from importlib import metadata

    versions = {}
    for pkg in ("rankexp", "torch", "pytorch-lightning", "transformers", "hydra-core", "ir-measures", "ir-datasets",
                "pytrec-eval-terrier", "bm25s", "wandb", "numpy", "scipy"):
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = None
    import torch

    device = "cuda:" + torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    return {
        "seed": seed,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "host": socket.gethostname(),
        "cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "device": device,
        "git_commit": _git_commit(),
        "versions": versions,
        "argv": sys.argv,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
