"""The only ``@hydra.main``: one sweep member per call. ``rankexp sweep`` runs
``python -m rankexp.hydra_app -m OVERRIDES…`` so Hydra's sweepers and launchers (basic, joblib,
submitit, optuna) work unchanged and every sweep is a fresh process (clean W&B and DDP state).

A member that fails is recorded as failed and the sweep goes on (a task wrapper); the return
value is the member's best dev measure, the objective for the Optuna sweeper.
"""

from __future__ import annotations

import os

import hydra
from omegaconf import DictConfig


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> float | None:
    from rankexp.sweep import run_member

    return run_member(cfg)


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
