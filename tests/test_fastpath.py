"""eval.fast: the exact path's scores are unchanged; int8/bf16 scores are close to exact; the
fused optimizer makes the same AdamW updates as the default one."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rankexp.data.tokens import PairEncoder, TextEncoder, TokenTable
from rankexp.errors import ConfigError
from rankexp.losses.listwise import SoftmaxCELoss
from rankexp.models.datamodule import pair_loader
from rankexp.models.encoders import CrossEncoder
from rankexp.models.module import RankingModule, fast_inference, score_pairs

TINY = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=128)
QUERIES = {"q1": "measurement of dielectric constant of liquids", "q2": "electron beams in plasma",
           "q3": "a very short one"}
DOCS = {f"d{i}": t for i, t in enumerate([
    "the dielectric constant of liquids was measured at microwave frequencies",
    "plasma oscillations excited by an electron beam are observed",
    "a short document",
    "transistor amplifiers with feedback and their noise figure in detail, over a wide band of frequencies",
    "liquids", "beams of electrons traversing a plasma column produce growing waves of large amplitude",
    "the constant is measured", "noise"])}


def table(tokenizer, texts):
    ids = list(texts)
    rows = [tokenizer(texts[i], add_special_tokens=False)["input_ids"] for i in ids]
    offsets = np.zeros(len(ids) + 1, dtype=np.int64)
    np.cumsum([len(r) for r in rows], out=offsets[1:])
    return TokenTable(ids, np.asarray([t for r in rows for t in r], dtype=np.int32), offsets)


@pytest.fixture(scope="module")
def setup():
    torch.manual_seed(0)
    enc = CrossEncoder(tiny=TINY, dropout=0.0, max_length=64, max_query_length=16).eval()
    pe = PairEncoder(enc.tokenizer, table(enc.tokenizer, DOCS), table(enc.tokenizer, QUERIES), 64, 16)
    pairs = [(q, d) for q in QUERIES for d in DOCS]
    return enc, pe, pairs


def one_by_one(enc, pe, pairs):
    """Each pair alone (no padding, no batch), by hand."""
    out = {}
    with torch.no_grad():
        for q, d in pairs:
            x = pe.encode([q], [d])
            out.setdefault(q, {})[d] = float(enc(**x)[0])
    return out


def test_exact_scores_unchanged(setup):
    enc, pe, pairs = setup
    before = {k: v.clone() for k, v in enc.state_dict().items()}
    ref = one_by_one(enc, pe, pairs)
    for fast in (None, "null"):
        got = score_pairs(enc, pair_loader(pairs, pe, 5), fast=fast)
        assert got.keys() == ref.keys()
        for q in ref:
            assert got[q].keys() == ref[q].keys()
            for d in ref[q]:
                assert abs(got[q][d] - ref[q][d]) < 1e-5, (q, d)
    # scoring with a fast path first leaves the model (and so the exact scores) untouched
    score_pairs(enc, pair_loader(pairs, pe, 5), fast="int8")
    assert all(torch.equal(before[k], v) for k, v in enc.state_dict().items())
    again = score_pairs(enc, pair_loader(pairs, pe, 5))
    assert all(abs(again[q][d] - ref[q][d]) < 1e-5 for q, d in pairs)


@pytest.mark.parametrize("fast,tol", [("int8", 0.05), ("bf16", 0.03)])
def test_fast_scores_close_to_exact(setup, fast, tol):
    """The fast path's [CLS] vectors are within ``tol`` (relative) of exact, and its scores within
    ``tol`` of the scale of a linear head's scores, |w| max|h| (the head is approximate too)."""
    enc, pe, pairs = setup
    x = pe.encode([q for q, _ in pairs], [d for _, d in pairs])
    model, context = fast_inference(enc, fast)
    with torch.inference_mode():
        h = enc.model(**x).last_hidden_state[:, 0]
        with context:
            h_fast = model.model(**x).last_hidden_state[:, 0].float()
    rel = ((h_fast - h).norm(dim=1) / h.norm(dim=1)).max().item()
    assert 0 < rel < tol, (fast, rel)
    exact = score_pairs(enc, pair_loader(pairs, pe, len(pairs)))
    got = score_pairs(enc, pair_loader(pairs, pe, len(pairs)), fast=fast)  # one batch, as x above
    bound = tol * enc.head.weight.norm().item() * h.norm(dim=1).max().item()
    diffs = [abs(got[q][d] - exact[q][d]) for q, d in pairs]
    assert 0 < max(diffs) <= bound, (fast, max(diffs), bound)


def test_int8_quantizes_the_linear_layers(setup):
    enc, _, _ = setup
    model, _ = fast_inference(enc, "int8")
    qlinear = torch.ao.nn.quantized.dynamic.Linear
    assert sum(isinstance(m, qlinear) for m in model.modules()) == sum(isinstance(m, torch.nn.Linear) for m in enc.modules())
    assert not any(isinstance(m, torch.nn.Linear) for m in model.modules())
    assert model is not enc and not any(isinstance(m, qlinear) for m in enc.modules())


def test_bad_fast_value_is_a_config_error(setup):
    enc, pe, pairs = setup
    with pytest.raises(ConfigError, match="eval.fast must be null, int8 or bf16, got 'fp8'"):
        score_pairs(enc, pair_loader(pairs, pe, 8), fast="fp8")
    with pytest.raises(ConfigError, match="CPU only"):
        fast_inference(enc, "int8", "cuda")


def test_encode_ids_fast_close_to_exact():
    from rankexp.models.biencoder import BiEncoder
    from rankexp.retrieval.dense import encode_ids

    torch.manual_seed(0)
    bi = BiEncoder(tiny=TINY, max_length=64, max_query_length=16)
    text = TextEncoder(bi.tokenizer, table(bi.tokenizer, DOCS), 64)
    ids = list(DOCS)
    exact = encode_ids(bi, text, ids, "doc", 3)
    by_hand = np.stack([bi.eval().encode(**text.encode([i]), side="doc").detach().numpy()[0] for i in ids])
    assert np.abs(exact - by_hand).max() < 1e-5
    fast = encode_ids(bi, text, ids, "doc", 3, fast="int8")
    cos = (fast * exact).sum(1) / (np.linalg.norm(fast, axis=1) * np.linalg.norm(exact, axis=1))
    assert cos.min() > 0.99 and not np.array_equal(fast, exact)


def test_fused_adamw_same_updates_as_default():
    """configure_optimizers' fused AdamW: the same parameters after 3 steps as torch's default AdamW
    with the same groups (same training semantics, another kernel)."""
    torch.manual_seed(0)
    enc = CrossEncoder(tiny=TINY, dropout=0.0, max_length=64, max_query_length=16).eval()  # no dropout noise
    m = RankingModule(enc, SoftmaxCELoss(), lr=1e-3, head_lr=1e-2, weight_decay=0.01, warmup_steps=1, max_steps=10)
    opt_f = m.configure_optimizers()["optimizer"]
    assert all(g.get("fused") for g in opt_f.param_groups)
    init = {k: v.clone() for k, v in m.state_dict().items()}
    g = torch.Generator().manual_seed(1)
    inputs = {"input_ids": torch.randint(1000, 2000, (8, 12), generator=g), "attention_mask": torch.ones(8, 12, dtype=torch.long)}

    def run(opt):
        m.load_state_dict(init)
        losses = []
        for _ in range(3):
            loss = SoftmaxCELoss()(m(inputs).view(2, 4)).mean()
            opt.zero_grad()
            loss.backward()
            grads = {f"{n}": p.grad.norm().item() for n, p in m.named_parameters()}
            opt.step()
            losses.append(float(loss))
        run.grads = grads
        return losses, {k: v.clone() for k, v in m.state_dict().items()}

    lf, pf = run(opt_f)
    opt_d = torch.optim.AdamW([{**{k: v for k, v in grp.items() if k not in ("fused", "params")}, "params": grp["params"]}
                               for grp in opt_f.param_groups], foreach=False)
    ld, pd = run(opt_d)
    assert np.allclose(lf, ld, atol=1e-6) and lf[0] != lf[-1], (lf, ld)
    # each tensor's two updates agree to 1e-3 of the update itself. Left out: tensors whose gradient is
    # 0 in exact arithmetic (the head's bias: a softmax over a group is shift-invariant; attention key
    # biases: a softmax over keys is too), so float noise, which Adam's normalisation turns into +-lr
    # steps of either sign in any implementation
    noise = {k for k, g in run.grads.items() if g < 1e-6}
    assert "encoder.head.bias" in noise and len(noise) < 10
    rel = {k: ((pf[k] - pd[k]).norm() / (pd[k] - init[k]).norm()).item() for k in pf if k not in noise}
    assert max(rel.values()) < 1e-3, max(rel.items(), key=lambda kv: kv[1])
    assert not torch.equal(pf["encoder.head.weight"], init["encoder.head.weight"])
