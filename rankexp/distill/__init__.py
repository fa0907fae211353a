"""Distillation's run-level part: teachers (loaded as ``rankexp rerank`` loads a model, so this sits
beside the stages, above the library layers) and their cached scores. The losses are
:mod:`rankexp.losses.distill`, fidelity :mod:`rankexp.eval.fidelity`. ``students`` (a cross-encoder cut to k layers)
depends on nothing but :mod:`rankexp.errors`, so the model layer may import it."""
