"""Comparing runs: seed groups, mean ± std and 95% CI, paired tests against a baseline, and rank
correlation between system orderings (docs/compare.md).

One module per responsibility; this package re-exports the public names, so
``from rankexp.eval.compare import compare, to_markdown`` works as before:

* :mod:`.model` — the result dataclasses (``System``, ``Comparison``, ``CompareResult`` ...);
* :mod:`.grouping` — runs → seed groups and their labels (``config_identity``, ``group_runs``);
* :mod:`.systems` — the systems built from stored runs: groups, untrained starts, the first stage;
* :mod:`.baseline` — which system the others are tested against;
* :mod:`.stats` — paired tests with correction, "learned at all?", system-ordering correlations;
* :mod:`.core` — :func:`compare`, the steps above in order;
* :mod:`.loading` — :func:`correlate_run_files` (the one part that reads files: two TREC runs);
* :mod:`.table` — ONE table model of a result, formatted once;
* :mod:`.render` — its renderers: rich, Markdown, LaTeX, CSV / JSON, HTML (a Jinja2 template).

Statistics:

* Runs whose resolved configs differ only in ``seed`` (and in output paths / logging, the keys
  the run id ignores) form one **group** (one system). Per measure, the group's test-set values
  over seeds (``metrics.json``) are summarised as mean, sample std and a Student-t 95% CI
  (:func:`rankexp.eval.significance.summarize`).
* The first stage (``bm25`` in ``perquery.tsv``) is always available as a pseudo-system.
* Paired tests against the baseline use, for each group, the **per-query mean over its seeds**:
  one value per query and system, paired on query ids. The seed-to-seed variance is shown in the
  std/CI columns; the test answers whether the system, averaged over its seeds, beats the
  baseline across queries. Every (system, measure) comparison is one hypothesis; the p-values
  of all of them are corrected together (Holm by default).
* System orderings: Kendall's tau-b, tau_ap (Yilmaz et al. 2008) and RBO (Webber et al. 2010)
  between the orderings of the systems by two measures, and between the dev ordering
  (``metrics.dev.best``) and the test ordering by the dev measure.
"""

from __future__ import annotations

from rankexp.eval.compare.baseline import resolve_baseline as resolve_baseline
from rankexp.eval.compare.core import compare as compare
from rankexp.eval.compare.grouping import config_identity as config_identity
from rankexp.eval.compare.grouping import differing_keys as differing_keys
from rankexp.eval.compare.grouping import group_labels as group_labels
from rankexp.eval.compare.grouping import group_runs as group_runs
from rankexp.eval.compare.loading import correlate_run_files as correlate_run_files
from rankexp.eval.compare.model import DOWN as DOWN
from rankexp.eval.compare.model import UP as UP
from rankexp.eval.compare.model import CompareResult as CompareResult
from rankexp.eval.compare.model import Comparison as Comparison
from rankexp.eval.compare.model import OrderingCorrelation as OrderingCorrelation
from rankexp.eval.compare.model import RunPairCorrelation as RunPairCorrelation
from rankexp.eval.compare.model import System as System
from rankexp.eval.compare.render import latex_escape as latex_escape
from rankexp.eval.compare.render import render_text as render_text
from rankexp.eval.compare.render import run_pair_query_note as run_pair_query_note
from rankexp.eval.compare.render import run_pair_rows as run_pair_rows
from rankexp.eval.compare.render import run_pair_text as run_pair_text
from rankexp.eval.compare.render import to_csv as to_csv
from rankexp.eval.compare.render import to_json as to_json
from rankexp.eval.compare.render import to_latex as to_latex
from rankexp.eval.compare.render import to_markdown as to_markdown
from rankexp.eval.compare.stats import RANDOMIZATION_SAMPLES as RANDOMIZATION_SAMPLES
from rankexp.eval.compare.stats import RANDOMIZATION_SEED as RANDOMIZATION_SEED
from rankexp.eval.compare.stats import learned_notes as learned_notes
from rankexp.eval.compare.stats import ordering_correlations as ordering_correlations
from rankexp.eval.compare.systems import available_measures as available_measures
from rankexp.eval.compare.systems import dev_curve as _dev_curve  # (the old private name; tests use it)
from rankexp.eval.compare.systems import parse_measure_list as parse_measure_list
from rankexp.eval.compare.table import FORMATS as FORMATS
from rankexp.eval.compare.table import Cell as Cell
from rankexp.eval.compare.table import cell as cell
from rankexp.eval.compare.table import comparison_table as comparison_table
from rankexp.eval.compare.table import dev_curve_rows as dev_curve_rows
from rankexp.eval.compare.table import fmt as fmt
from rankexp.eval.compare.table import fmt_p as fmt_p
from rankexp.eval.compare.table import result_rows as result_rows
from rankexp.eval.compare.table import seeds_cell as seeds_cell

__all__ = [
    "System", "Comparison", "OrderingCorrelation", "CompareResult", "RunPairCorrelation",
    "group_runs", "config_identity", "differing_keys", "compare", "correlate_run_files",
    "parse_measure_list", "to_csv", "to_json", "to_markdown", "to_latex", "FORMATS",
    "UP", "DOWN", "dev_curve_rows", "comparison_table", "render_text",
]
