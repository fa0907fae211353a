"""Experiment loggers: W&B (offline unless logged in), CSV, or none. A W&B failure is a warning.

Each ``conf/logger/*.yaml`` is a ``_target_`` config of a :class:`LoggerFactory` (like every other
group); :func:`build_logger` instantiates it and calls it with the run's identity.

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


_ACTIVE: list = []  # W&B loggers started in this process and not finished yet (see finish_all)


def base_url() -> str:
    return os.environ.get("WANDB_BASE_URL") or "https://api.wandb.ai"


def unreachable(url: str | None = None, timeout: float | None = None) -> str | None:
    """Why the W&B server cannot be reached (a TCP connect to its host within ``timeout`` seconds,
    ``RANKEXP_WANDB_PROBE_S``, 3 by default), or None when it can. Behind a proxy
    (``HTTPS_PROXY``/``HTTP_PROXY``) the probe is skipped: W&B's own init timeout applies."""
    import socket
    from urllib.parse import urlparse

    url = url or base_url()
    if any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY")):
        return None
    u = urlparse(url)
    host = u.hostname
    if not host:
        return f"bad WANDB_BASE_URL {url!r}"
    port = u.port or (443 if u.scheme == "https" else 80)
    timeout = float(os.environ.get("RANKEXP_WANDB_PROBE_S", "3")) if timeout is None else timeout
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return None
    except OSError as e:
        return f"{type(e).__name__}: {e.strerror or e}" if not isinstance(e, socket.timeout) else f"no answer in {timeout:g} s"


def _leftover_run() -> None:
    """A W&B run of an earlier attempt in this process that was never finished would swallow the
    next one (``WandbLogger`` attaches to ``wandb.run``): finish it first."""
    finish_all(1)
    try:
        import wandb

        if wandb.run is not None:
            wandb.run.finish(exit_code=1)
    except Exception:  # pragma: no cover
        pass


class LoggerFactory:
    """A ``logger`` config: ``_target_`` names one of these classes, its keys are the arguments, and
    calling it with the run's identity builds the Lightning logger (``False``: none). Subclass it for
    another experiment tracker and point ``conf/logger/NAME.yaml``'s ``_target_`` at the subclass.

    ``kind`` labels what it builds (``wandb``, ``csv``, ``none``); sweeps read it (one W&B group per
    sweep), so a config's ``kind`` must match its class.
    """

    kind = "none"

    def __init__(self, kind: str | None = None):
        if kind is not None and kind != self.kind:
            raise ValueError(f"logger.kind={kind} does not match logger._target_ {type(self).__name__} "
                             f"(which builds a {self.kind} logger); choose the logger with logger=NAME")

    def __call__(self, run_id: str, rundir: Path, output_dir: Path, config: dict, tags: list[str]):
        return False


class NoLoggerFactory(LoggerFactory):
    """No experiment logger; history.jsonl in the run directory still records the curves."""

    kind = "none"


class CSVLoggerFactory(LoggerFactory):
    """Lightning's CSVLogger, written into the run directory (``csv/metrics.csv``)."""

    kind = "csv"

    def __call__(self, run_id, rundir, output_dir, config, tags):
        from pytorch_lightning.loggers import CSVLogger

        return CSVLogger(save_dir=str(rundir), name="csv", version="")


class WandbLoggerFactory(LoggerFactory):
    """Weights & Biases through Lightning's WandbLogger, one W&B run per rankexp run (id = run id).

    ``mode``: null = ``WANDB_MODE`` if set, online when logged in, else offline. An unreachable server
    (a connect probe) or a failed online start falls back to offline with one warning line; when W&B
    cannot start at all the run goes on without it (one line). Every W&B run is finished when its run
    ends (:func:`finish_all`).
    """

    kind = "wandb"

    def __init__(self, project: str = "rankexp", entity: str | None = None, group: str | None = None,
                 job_type: str | None = "train", tags: Any = (), mode: str | None = None, kind: str | None = None):
        super().__init__(kind)
        self.project, self.entity, self.group, self.job_type = project, entity, group, job_type
        self.tags, self.mode = [str(t) for t in (tags or [])], mode

    def settings(self) -> dict[str, Any]:
        return {"project": self.project, "entity": self.entity, "group": self.group, "job_type": self.job_type,
                "tags": self.tags, "mode": self.mode}

    def __call__(self, run_id, rundir, output_dir, config, tags):
        from rankexp.tracking.lifecycle import notice

        cfg = self.settings()
        output_dir = Path(output_dir)
        mode = wandb_mode(self.mode)
        sync_hint = f"push it later with `rankexp wandb sync {run_id}`"
        if mode == "online":
            why = unreachable()
            if why:
                mode = "offline"
                notice(f"W&B server {base_url()} unreachable ({why}); logging offline to {output_dir / 'wandb'}: {sync_hint}")
        _leftover_run()
        try:
            logger = _wandb_logger(cfg, mode, run_id, output_dir, config, tags)
        except Exception as e:
            first = f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}"
            if mode != "online":
                notice(f"W&B unavailable ({first}); results stay in the run directory")
                return False
            _leftover_run()
            try:  # online init failed (timeout, auth): keep an offline copy rather than nothing
                logger = _wandb_logger(cfg, "offline", run_id, output_dir, config, tags)
                notice(f"W&B online init failed ({first}); logging offline to {output_dir / 'wandb'}: {sync_hint}")
            except Exception as e2:
                notice(f"W&B unavailable ({first}; offline: {type(e2).__name__}); results stay in the run directory")
                return False
        return logger


# a logger config without _target_ (written before loggers were _target_ configs): its kind decides
_BY_KIND: dict[str, type[LoggerFactory]] = {"none": NoLoggerFactory, "csv": CSVLoggerFactory, "wandb": WandbLoggerFactory}


def logger_factory(cfg: Mapping[str, Any] | None) -> LoggerFactory:
    """The :class:`LoggerFactory` a ``logger`` config describes (built through its ``_target_``)."""
    from omegaconf import DictConfig, OmegaConf

    from rankexp.config.compose import build
    from rankexp.errors import ConfigError

    if not cfg:
        return NoLoggerFactory()
    if "_target_" not in cfg:
        kind = cfg.get("kind", "none")
        if kind not in _BY_KIND:
            raise ConfigError(f"logger.kind must be wandb, csv or none, got {kind!r}")
        if kind != "wandb":
            return _BY_KIND[kind](kind)
        plain = OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else dict(cfg)
        keys = ("project", "entity", "group", "job_type", "tags", "mode")
        return WandbLoggerFactory(**{k: plain[k] for k in keys if k in plain})
    factory = build(cfg, "logger")
    if not isinstance(factory, LoggerFactory):
        raise ConfigError(f"logger._target_ must name a rankexp.tracking.loggers.LoggerFactory, got {type(factory).__name__}")
    return factory


def build_logger(cfg: Mapping[str, Any] | None, run_id: str, rundir: Path, output_dir: Path, config: dict, tags: list[str]):
    """The run's Lightning logger from its ``logger`` config, or ``False`` for none."""
    return logger_factory(cfg)(run_id, Path(rundir), Path(output_dir), config, list(tags))


def _wandb_logger(cfg: Mapping[str, Any], mode: str, run_id: str, output_dir: Path, config: dict, tags: list[str]):
    import wandb
    from pytorch_lightning.loggers import WandbLogger

    output_dir.mkdir(parents=True, exist_ok=True)
    # W&B waits 90 s for an unresponsive server by default; RANKEXP_WANDB_INIT_TIMEOUT (20 s) bounds it
    settings = wandb.Settings(init_timeout=float(os.environ.get("RANKEXP_WANDB_INIT_TIMEOUT", "20")))
    logger = WandbLogger(
        project=cfg.get("project") or "rankexp", entity=cfg.get("entity"), group=cfg.get("group"),
        job_type=cfg.get("job_type"), tags=list(cfg.get("tags") or []) + tags, name=run_id, id=run_id,
        save_dir=str(output_dir), mode=mode, config=config, resume="allow", settings=settings,
    )
    # Lightning passes anonymous=None to wandb.init, which W&B >= 0.19 deprecates with a warning printed into
    # our tables ("The anonymous setting has no effect"): drop the key (we never set it)
    if getattr(logger, "_wandb_init", {}).get("anonymous", "unset") is None:
        logger._wandb_init.pop("anonymous")
    _ACTIVE.append(logger)
    try:
        _ = logger.experiment  # start now so a failure shows here, not mid-training
    except BaseException:
        _ACTIVE.remove(logger)
        raise
    log.info("W&B run %s (%s mode)", run_id, mode)
    return logger


def summary_extras(metrics: Mapping[str, Any]) -> dict[str, float]:
    """The numbers of ``metrics.json`` beyond the measures that a comparison of runs reads from a
    logger's summary: distillation fidelity to the teacher (``distill/fidelity/<system>/<measure>``),
    the teacher's scoring time and cache use, and the debias diagnostics (``debias/...``)."""
    out: dict[str, float] = {}
    distill = metrics.get("distill") or {}
    for system, fid in (distill.get("fidelity") or {}).items():
        for m, v in ((fid or {}).get("mean") or {}).items():
            if isinstance(v, (int, float)):
                out[f"distill/fidelity/{system}/{m}"] = float(v)
    for k in ("scoring_s", "cache_hits", "cache_builds", "scored_pairs", "cached_pairs"):
        if isinstance(distill.get(k), (int, float)):
            out[f"distill/{k}"] = float(distill[k])

    def walk(obj: Any, prefix: str) -> None:
        if isinstance(obj, Mapping):
            for k, v in obj.items():
                walk(v, f"{prefix}/{k}")
        elif isinstance(obj, (int, float)) and not isinstance(obj, bool):
            out[prefix] = float(obj)

    walk(metrics.get("debias") or {}, "debias")
    return out


def histogram(values, bins: int = 20) -> dict[str, list[float]]:
    """``{"edges": [bins + 1], "counts": [bins]}`` of ``values`` (equal-width bins over their range; one
    value or all equal: one bin around it), plus their count and mean."""
    import numpy as np

    v = np.asarray(values, dtype=np.float64).reshape(-1)
    lo, hi = (float(v.min()), float(v.max())) if v.size else (0.0, 1.0)
    if hi <= lo:
        lo, hi, bins = lo - 0.5, hi + 0.5, 1
    counts, edges = np.histogram(v, bins=bins, range=(lo, hi))
    return {"edges": [float(e) for e in edges], "counts": [int(c) for c in counts], "n": int(v.size),
            "mean": float(v.mean()) if v.size else float("nan")}


def log_histograms(logger, hists: Mapping[str, Mapping[str, list]], step: int) -> bool:
    """Draw :func:`histogram` results in W&B (``wandb.Histogram`` at ``trainer/global_step`` = step); other
    loggers take scalars only (the histograms stay in history.jsonl). Never raises; returns whether it drew."""
    if not logger or type(logger).__name__ != "WandbLogger" or not hists:
        return False
    try:
        import wandb

        payload: dict[str, Any] = {name: wandb.Histogram(np_histogram=(h["counts"], h["edges"])) for name, h in hists.items()}
        logger.log_metrics(payload, step=step)
        return True
    except Exception as e:  # pragma: no cover - network dependent
        warnings.warn(f"W&B histogram logging failed ({type(e).__name__}); the histograms stay in history.jsonl",
                      stacklevel=2)
        return False


def log_final(logger, metrics: Mapping[str, Any], perquery: Mapping[str, Mapping[str, Mapping[str, float]]],
              extras: Mapping[str, float] | None = None) -> None:
    """Mirror final metrics, ``extras`` (:func:`summary_extras`) and the per-query table to W&B; never raise."""
    if not logger or type(logger).__name__ != "WandbLogger":
        return
    try:
        import wandb

        run = logger.experiment
        flat = {f"test/{system}/{m}": v for system, ms in metrics.items() for m, v in ms.items()}
        flat.update(extras or {})
        run.summary.update(flat)
        rows = [[system, measure, qid, value] for system, ms in perquery.items() for measure, vals in ms.items() for qid, value in vals.items()]
        run.log({"test/perquery": wandb.Table(columns=["system", "measure", "query_id", "value"], data=rows)})
    except Exception as e:  # pragma: no cover - network dependent
        warnings.warn(f"W&B logging failed ({type(e).__name__}); results stay in the run directory", stacklevel=2)


def finish(logger, failed: bool = False, exit_code: int | None = None) -> None:
    """Finish one W&B run (``exit_code`` non-zero marks it failed); never raise."""
    if logger and type(logger).__name__ == "WandbLogger":
        if logger in _ACTIVE:
            _ACTIVE.remove(logger)
        try:
            code = exit_code if exit_code is not None else (1 if failed else 0)
            run = logger._experiment if getattr(logger, "_experiment", None) is not None else logger.experiment
            run.finish(exit_code=code)
        except Exception:  # pragma: no cover
            pass


def finish_all(exit_code: int = 0) -> None:
    """Finish every W&B run started in this process (success: 0; failure or interrupt: non-zero),
    so the next run (a sweep member in the same process) never logs into it."""
    while _ACTIVE:
        finish(_ACTIVE[-1], exit_code=exit_code)


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
