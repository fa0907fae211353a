"""Stage ``build``: the Lightning module a model config names (``model.module._target_``).

Every module takes the encoder, the loss and the weighter plus the optimisation and dev-evaluation
options. A module may ask for more by naming a constructor parameter the stage knows how to fill
(:data:`PROVIDERS`): ``relevant`` (the training queries' judged-relevant documents, for masking
false in-batch negatives) and ``dynamic`` (the negative sampler, when it mines during training).
"""

from __future__ import annotations

import inspect
from typing import Any, Callable

from rankexp.pipeline.prepare import Prepared

PROVIDERS: dict[str, Callable[[Prepared], Any]] = {
    "relevant": lambda p: {q: p.collection.relevant(q) for q in p.split["train"]},
    "dynamic": lambda p: p.sampler if getattr(p.sampler, "dynamic", False) else None,
}

LEGACY = {"cross": "rankexp.models.module.RankingModule", "bi": "rankexp.models.bimodule.BiEncoderModule"}


def module_class(model_cfg, encoder) -> type:
    """``model.module._target_``; a config written before modules were named (an older run
    directory) gets the one its encoder declares (``encoder.kind``)."""
    from hydra.utils import get_class

    from rankexp.errors import ConfigError

    node = model_cfg.get("module") if model_cfg is not None else None
    target = node.get("_target_") if node is not None else LEGACY[getattr(encoder, "kind", "cross")]
    try:
        return get_class(str(target))
    except Exception as e:
        raise ConfigError(f"model.module._target_: cannot import {target!r} ({type(e).__name__})") from None


def build_module(prep: Prepared):
    cfg = prep.cfg
    from rankexp.losses.distill import with_distillation  # distill=...: the label loss mixed with a teacher's

    prep.loss = with_distillation(cfg.get("distill"), prep.loss)
    cls = module_class(cfg.model, prep.encoder)
    max_steps = int(cfg.trainer.max_steps)
    params = inspect.signature(cls.__init__).parameters
    extra = {name: provide(prep) for name, provide in PROVIDERS.items() if name in params}
    module = cls(prep.encoder, prep.loss, prep.weighter, **extra, lr=float(cfg.model.lr),
                 head_lr=float(cfg.model.head_lr) if cfg.model.get("head_lr") else None,
                 weight_decay=float(cfg.model.weight_decay),
                 warmup_steps=int(round(float(cfg.model.warmup_ratio) * max_steps)), max_steps=max_steps,
                 dev_qrels=prep.dev_qrels, dev_measures=(prep.dev_measure,),
                 length_buckets=int(cfg.train.length_buckets))
    from rankexp.debias import attach  # debias=cet wraps the loss (module.loss_fn, a checkpointed submodule)

    attach(prep, module)
    warn_in_batch_dropped(module)
    if hasattr(module, "check_inputs"):  # what the loss/weighter require in a batch: one line now, before any training
        module.check_inputs(batch_sources(prep))
    return module


def warn_in_batch_dropped(module: Any) -> bool:
    """A bi-encoder with ``model.encoder.in_batch=true`` whose (final) loss cannot score extra negatives
    (distillation, ``debias=cet``, pairwise/pointwise losses) trains on each group's own documents only:
    say so once, so that a comparison with an in-batch run is not read as the technique's effect.
    Returns whether it warned."""
    import logging

    if not getattr(module, "in_batch_dropped", False):  # BiEncoderModule's own rule; other modules have none
        return False
    loss = module.loss_fn
    logging.getLogger(__name__).warning(
        "model.encoder.in_batch=true is ignored: loss %s scores each group's own documents only, so this run has "
        "no in-batch negatives (set model.encoder.in_batch=false in the runs it is compared with)",
        getattr(loss, "name", type(loss).__name__))
    return True


def batch_sources(prep: Prepared) -> dict[str, Any]:
    """The runs that can fill a training batch's score fields (rankexp.models.batch); None = not available."""
    from rankexp.distill.teachers import teacher_for  # distill.teacher: filled in fit, once the groups exist

    return {"first_stage_scores": prep.fs_run, "teacher_scores": teacher_for(prep)}
