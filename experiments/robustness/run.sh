#!/usr/bin/env bash
# The robustness study of issue 16 (experiments/robustness/README.md), exactly as it was run:
# one process at a time on one CPU core. Usage: bash experiments/robustness/run.sh [CE_RUN_DIR]
# CE_RUN_DIR: the cross-encoder victim, a rankexp run directory (`rankexp train model=cross_encoder seed=1`,
# 100 steps; the study used outputs/runs/33dfc116f7).
set -u
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 WANDB_MODE=offline WANDB_SILENT=true OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
export NLTK_DATA=${NLTK_DATA:-/work/shared/nltk_data} IR_DATASETS_HOME=${IR_DATASETS_HOME:-/work/exp/irds}
export RANKEXP_OUTPUT=${RANKEXP_OUTPUT:-/work/exp/outputs}
CE=${1:-$RANKEXP_OUTPUT/runs/33dfc116f7}
rx() { echo "=== $(date +%H:%M:%S) rankexp $*"; s=$(date +%s); python -m rankexp "$@"; echo "--- rc=$? wall=$(( $(date +%s) - s ))s"; }

# 1. Smoke tests (2 queries each; the first run of a victim trains its imitation model, cached for the rest)
rx attack bm25 attack=prada data=vaswani attack.max_queries=2   # (logger: the default; the others logger=none)
rx attack bm25 attack=pat data=vaswani logger=none attack.max_queries=2
rx attack bm25 attack=topic data=vaswani logger=none attack.max_queries=2 attack.topic.group_size=2
rx attack all-MiniLM-L6-v2 attack=prada data=vaswani logger=none attack.max_queries=2
rx attack all-MiniLM-L6-v2 attack=pat data=vaswani logger=none attack.max_queries=2
rx attack all-MiniLM-L6-v2 attack=topic data=vaswani logger=none attack.max_queries=2 attack.topic.group_size=2

# 2. The study: victims x {prada, pat, topic} x attack.seed {0,1,2}; black box (imitation surrogate),
#    default budgets (prada 10 % of the words, pat/topic 6 tokens), targets at ranks 51-100, 1 per query,
#    8 of the 28 vaswani test queries (a seeded choice per seed), topic groups of 4.
for v in bm25 all-MiniLM-L6-v2 "$CE"; do
  data="data=vaswani"; [ "$v" = "$CE" ] && data=""   # a run directory brings its own data and first stage
  for a in prada pat topic; do
    for s in 0 1 2; do
      extra=""; [ $a = topic ] && extra="attack.topic.group_size=4"
      rx attack "$v" attack=$a $data logger=none attack.max_queries=8 attack.seed=$s $extra
    done
  done
done

# 3. CertDR: the first 5 test queries, top 25, N = 100, K = 10 and 20
rx certify bm25 data=vaswani certify.depth=25 certify.samples=100 certify.max_queries=5 certify.scale=5
rx certify all-MiniLM-L6-v2 data=vaswani certify.depth=25 certify.samples=100 certify.max_queries=5 certify.scale=0.05
rx certify "$CE" certify.depth=25 certify.samples=100 certify.max_queries=5

# 4. Compare the attacks of one victim (paired over the same targets): the bi-encoder's 9 study runs
#    (their ids are printed by each `rankexp attack`; in the study: 9cec563089 a10a45b38e 3432c130a6
#    fad80d2d25 f232e0e64f 8cd50ece4e 732a0e4944 1ceb981cde 7b9bc188b4), then the study's tables
A=$RANKEXP_OUTPUT/attacks
python -m rankexp compare $A/9cec563089 $A/a10a45b38e $A/3432c130a6 $A/fad80d2d25 $A/f232e0e64f $A/8cd50ece4e \
  $A/732a0e4944 $A/1ceb981cde $A/7b9bc188b4 --format markdown
python experiments/robustness/summarize.py "$RANKEXP_OUTPUT" --max-queries 8
