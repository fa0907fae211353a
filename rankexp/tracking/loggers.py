"""Experiment loggers: W&B (offline unless logged in), CSV, or none. A W&B failure is a warning.

The run directory stays the source of truth; W&B mirrors it: config, train/dev curves, final
metrics (baseline beside model) and the per-query table.
"""

from __future__ import annotations

import logging
import netrc
import os
import warnings
from pathlib import Path
from typing import Any, Mapping

log = logging.getLogger(__name__)


def wandb_mode(configured: str | None) -> str:
    """``logger.mode`` if set, else ``WANDB_MODE``, else online when credentials exist, else offline."""
    if configured:
        return configured
    if os.environ.get("WANDB_MODE"):
        return os.environ["WANDB_MODE"]
    return "online" if logged_in() else "offline"


def logged_in() -> bool:
    """W&B credentials exist: ``WANDB_API_KEY`` or a ~/.netrc entry for the W&B host."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        host = os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai").split("://")[-1].split("/")[0]
        return bool(netrc.netrc().authenticators(host))
    except (FileNotFoundError, netrc.NetrcParseError, OSError):
        return False


def build_logger(cfg: Mapping[str, Any], run_id: str, rundir: Path, output_dir: Path, config: dict, tags: list[str]):
    kind = (cfg or {}).get("kind", "none")
    if kind == "none":
        return False
    if kind == "csv":
        from pytorch_lightning.loggers import CSVLogger

        return CSVLogger(save_dir=str(rundir), name="csv", version="")
    if kind == "wandb":
        try:
            from pytorch_lightning.loggers import WandbLogger

            mode = wandb_mode(cfg.get("mode"))
            output_dir.mkdir(parents=True, exist_ok=True)
            logger = WandbLogger(
                project=cfg.get("project") or "rankexp", entity=cfg.get("entity"), group=cfg.get("group"),
                job_type=cfg.get("job_type"), tags=list(cfg.get("tags") or []) + tags, name=run_id, id=run_id,
                save_dir=str(output_dir), mode=mode, config=config, resume="allow",
            )
            _ = logger.experiment  # start now so a failure shows here, not mid-training
            log.info("W&B run %s (%s mode)", run_id, mode)
            return logger
        except Exception as e:
            warnings.warn(f"W&B unavailable ({type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}); "
                          "results stay in the run directory", stacklevel=2)
            return False
    raise ValueError(f"logger.kind must be wandb, csv or none, got {kind!r}")


def log_final(logger, metrics: Mapping[str, Any], perquery: Mapping[str, Mapping[str, Mapping[str, float]]]) -> None:
    """Mirror final metrics and the per-query table to W&B; never raise."""
    if not logger or type(logger).__name__ != "WandbLogger":
        return
    try:
        import wandb

        run = logger.experiment
        flat = {f"test/{system}/{m}": v for system, ms in metrics.items() for m, v in ms.items()}
        run.summary.update(flat)
        rows = [[system, measure, qid, value] for system, ms in perquery.items() for measure, vals in ms.items() for qid, value in vals.items()]
        run.log({"test/perquery": wandb.Table(columns=["system", "measure", "query_id", "value"], data=rows)})
    except Exception as e:  # pragma: no cover - network dependent
        warnings.warn(f"W&B logging failed ({type(e).__name__}); results stay in the run directory", stacklevel=2)


def finish(logger, failed: bool = False) -> None:
    if logger and type(logger).__name__ == "WandbLogger":
        try:
            logger.experiment.finish(exit_code=1 if failed else 0)
        except Exception:  # pragma: no cover
            pass


def offline_runs(run_ids: list[str], output_dir: Path) -> list[Path]:
    """The offline W&B run folders (``<output_dir>/wandb/offline-run-*-<run_id>``) of these runs."""
    root = Path(output_dir) / "wandb"
    found: list[Path] = []
    for rid in run_ids:
        found.extend(sorted(root.glob(f"offline-run-*-{rid}")))
    return found


def sync(folders: list[Path]) -> None:
    """Push offline runs with ``wandb sync``; one clear error when it cannot."""
    import subprocess
    import sys

    from rankexp.errors import RankexpError

    if not logged_in():
        raise RankexpError("no W&B login: run `wandb login` (or set WANDB_API_KEY), then sync again")
    proc = subprocess.run([sys.executable, "-m", "wandb", "sync", *map(str, folders)], capture_output=True, text=True)
    if proc.returncode != 0:
        lines = [l for l in (proc.stderr or proc.stdout).splitlines() if l.strip()]
        raise RankexpError(f"wandb sync failed: {lines[-1] if lines else f'exit {proc.returncode}'}")
