"""A run as named stages, shared by ``train``, ``retrieve``, ``rerank`` (and later ``attack``).

``prepare`` (seed, components, data, split, first stage, tokens, mining) → ``build`` (the Lightning
module ``model.module`` names) → ``fit`` (trainer, untrained start, training, model selection) →
``predict`` (the one place test queries are ranked) → ``evaluate`` (beside the first stage and
the untrained start, paired tests) → ``write`` (the run directory). See docs/architecture.md.
"""
