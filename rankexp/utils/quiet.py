"""Quiet library logging: keep the terminal for rankexp's own output (the CLI and sweep members)."""

from __future__ import annotations

import logging
import os
import warnings


def quiet_libraries(lightning: bool = False) -> None:
    """Keep the terminal for rankexp's own output: library chatter to error level.

    ``lightning=True`` imports Lightning first, since it resets its own log level on import.
    """
    if lightning:
        import pytorch_lightning  # noqa: F401
    for name in ("pytorch_lightning", "lightning", "lightning.pytorch", "lightning_fabric", "transformers", "ir_datasets",
                 "bm25s", "wandb", "urllib3", "filelock", "httpx"):
        logging.getLogger(name).setLevel(logging.ERROR)
    for pattern in (".*does not have many workers.*", ".*num_workers.*", ".*LeafSpec.*", ".*is deprecated.*",
                    ".*The number of training batches.*", ".*Checkpoint directory.*exists.*", ".*tensorboardX.*",
                    ".*predict_dataloader.*", ".*Trying to infer the `batch_size`.*", ".*sync_dist=True.*"):
        warnings.filterwarnings("ignore", pattern)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("WANDB_SILENT", "true")
    try:
        import transformers

        transformers.logging.set_verbosity_error()
        transformers.utils.logging.disable_progress_bar()
    except Exception:  # pragma: no cover
        pass
