#!/usr/bin/env bash
# The SciFact part of the robustness study (experiments/robustness/README.md, section "SciFact"), as it was run:
# the same victims, attacks, seeds and budgets as run.sh on vaswani, over SciFact's train claims
# (the seeded train/dev/test split of data=scifact; 8 of the 243 test claims per seed).
# Usage: bash experiments/robustness/run_scifact.sh PART [CE_RUN_DIR]
#   PART = bm25 | be (the bi-encoder) | ce (the cross-encoder run CE_RUN_DIR) | certify (the three victims)
#   | certify-bm25-be (BM25 and the bi-encoder only) | ce-prada, ce-pat-topic, certify-ce (the cross-encoder's
#   part split in two, for two cores: run ce-prada first, it trains the imitation model the others reuse)
#   The study ran BM25's and the bi-encoder's parts as processes side by side on the 2 cores, and the
#   cross-encoder's as ce-prada then certify-ce on one core beside ce-pat-topic on the other
# The cross-encoder victim: `rankexp train model=cross_encoder data=scifact data.path=$SCIFACT seed=1 logger=none
#   trainer.max_steps=300 train.val_every_n_steps=50 eval.dev_rerank_k=20 eval.untrained=false` (README, SciFact section).
set -u
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 WANDB_MODE=offline WANDB_SILENT=true OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
export NLTK_DATA=${NLTK_DATA:-/work/shared/nltk_data} IR_DATASETS_HOME=${IR_DATASETS_HOME:-/work/exp/irds}
export RANKEXP_OUTPUT=${RANKEXP_OUTPUT:-/work/exp/outputs}
SCIFACT=${SCIFACT:-/work/shared/data/scifact}
PART=${1:?PART: bm25 | be | ce | ce-prada | ce-pat-topic | certify | certify-bm25-be | certify-ce}
CE=${2:-}
rx() { echo "=== $(date +%H:%M:%S) rankexp $*"; s=$(date +%s); python -m rankexp "$@"; echo "--- rc=$? wall=$(( $(date +%s) - s ))s"; }

attack_all() {  # victim, data overrides...  (ATTACKS: which attacks, default all three)
  local v=$1; shift
  for a in ${ATTACKS:-prada pat topic}; do
    for s in 0 1 2; do
      extra=""; [ $a = topic ] && extra="attack.topic.group_size=4"
      rx attack "$v" attack=$a "$@" logger=none attack.max_queries=8 attack.seed=$s $extra
    done
  done
}

case $PART in
  bm25)
    attack_all bm25 data=scifact data.path=$SCIFACT ;;
  be)
    attack_all all-MiniLM-L6-v2 data=scifact data.path=$SCIFACT ;;
  ce)
    attack_all "${CE:?CE_RUN_DIR}" ;;   # a run directory brings its own data and first stage
  ce-prada)
    ATTACKS=prada attack_all "${CE:?CE_RUN_DIR}" ;;
  ce-pat-topic)
    ATTACKS="pat topic" attack_all "${CE:?CE_RUN_DIR}" ;;
  certify-ce)
    rx certify "${CE:?CE_RUN_DIR}" certify.depth=25 certify.samples=100 certify.max_queries=5 ;;
  certify|certify-bm25-be)
    rx certify bm25 data=scifact data.path=$SCIFACT certify.depth=25 certify.samples=100 certify.max_queries=5 certify.scale=5
    rx certify all-MiniLM-L6-v2 data=scifact data.path=$SCIFACT certify.depth=25 certify.samples=100 certify.max_queries=5 certify.scale=0.05
    [ $PART = certify ] && rx certify "${CE:?CE_RUN_DIR}" certify.depth=25 certify.samples=100 certify.max_queries=5 ;;
esac
