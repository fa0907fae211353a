"""PAT (imitation model + trigger tokens) and the topic-oriented attack on tiny models and a crafted victim."""

from __future__ import annotations

import math
import random
from pathlib import Path

import pytest
import torch

from rankexp.attacks.base import AttackContext, Target, words
from rankexp.attacks.fluency import BigramLM, lm_words
from rankexp.errors import ConfigError

TINY = {"name": "all-MiniLM-L6-v2", "max_length": 64, "max_query_length": 16, "dropout": 0.0,
        "tiny": {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64}}
VOCAB = ("river bank water flood money loan credit stone bridge city market house garden music night light "
         "paper print school child").split()
GOOD = {"flood", "water", "river"}


class WordVictim:
    """A deterministic black box: score = 2 x (words of GOOD in the document) + (query words in it)."""

    name, kind = "word-victim", "cross"

    def __init__(self, n_docs: int = 40, n_queries: int = 12, seed: int = 0):
        rng = random.Random(seed)
        self.docs = {f"d{i}": " ".join(rng.choice(VOCAB) for _ in range(rng.randint(6, 12))) for i in range(n_docs)}
        self.queries = {f"q{i}": " ".join(rng.sample(VOCAB, 2)) for i in range(n_queries)}
        self.train_queries = [f"q{i}" for i in range(8)]
        self.queries_used = 0

    def query_text(self, qid):
        return self.queries[qid]

    def doc_text(self, doc_id):
        return self.docs[doc_id]

    def _score(self, qid, text):
        q = set(lm_words(self.queries[qid]))
        ws = lm_words(text)
        return 2.0 * sum(w in GOOD for w in ws) + sum(w in q for w in ws) + 0.001 * len(ws)

    def candidates(self, qid):
        return {d: self._score(qid, t) for d, t in self.docs.items()}

    def score_texts(self, qid, texts, count=True):
        if count:
            self.queries_used += len(texts)
        return [self._score(qid, t) for t in texts]

    def rank_with(self, qid, doc_id, score):
        return 1 + sum(s >= score for d, s in self.candidates(qid).items() if d != doc_id)


@pytest.fixture(scope="module")
def tiny_encoder():
    from rankexp.models.encoders import CrossEncoder

    torch.manual_seed(0)
    return CrossEncoder(**TINY).eval()


def context(victim, tmp_path=None, ranker=None, queries=("q8", "q9", "q10", "q11")):
    return AttackContext(cfg=None, victim=victim, ranker=ranker, white_box=ranker is not None, seed=0,
                         queries=list(queries), state_dir=tmp_path)


def white_box_ctx(victim, encoder):
    from rankexp.pipeline.loading import Ranker
    from rankexp.pipeline.scorers import CrossScorer

    return context(victim, ranker=Ranker(encoder, CrossScorer(), "tiny"))


# ---------------------------------------------------------------------------------------------
# imitation
# ---------------------------------------------------------------------------------------------

def test_imitation_training_raises_fidelity_counts_queries_and_is_reused(tmp_path):
    from rankexp.attacks.imitation import train_imitation

    victim = WordVictim()
    ctx = context(victim, tmp_path)
    kw = {"model": TINY, "n_queries": 6, "heldout": 2, "depth": 20, "pos_depth": 5, "steps": 60, "lr": 1e-3}
    ranker = train_imitation(ctx, **kw)
    facts = ranker.facts
    assert victim.queries_used == (6 + 2) * 20 == facts["victim_queries"]
    after, before = facts["fidelity"], facts["fidelity_untrained"]
    assert facts["heldout_queries"] == 2
    assert after["rbo"] > before["rbo"] and after["top10_overlap"] > before["top10_overlap"], facts
    assert after["kendall_tau"] > 0.3, facts
    # idempotent within the run: same object, no new victim queries
    assert train_imitation(ctx, **kw) is ranker and victim.queries_used == 160
    # a resumed run (new context, same state_dir) reloads the weights instead of retraining
    victim2 = WordVictim()
    again = train_imitation(context(victim2, tmp_path), **kw)
    assert again.facts["reused"] and victim2.queries_used == 0
    x = ("river flood", "water water flood bank")
    from rankexp.attacks.imitation import score_texts

    assert score_texts(again.encoder, [x[0]], [x[1]]) == pytest.approx(score_texts(ranker.encoder, [x[0]], [x[1]]), abs=1e-5)


def test_imitation_model_is_reused_from_the_cache_across_runs(tmp_path):
    from rankexp.attacks.imitation import score_texts, train_imitation
    from rankexp.tracking.cache import Cache

    class Identified(WordVictim):
        def identity(self):
            return {"crafted": "word-victim"}

    kw = {"model": TINY, "n_queries": 3, "heldout": 1, "depth": 10, "pos_depth": 3, "steps": 5, "lr": 1e-3}
    runs = []
    for i in range(2):
        victim = Identified()
        ctx = context(victim, tmp_path / f"run{i}")
        ctx.cache = Cache(tmp_path / "cache")
        runs.append((train_imitation(ctx, **kw), victim))
    (first, v1), (second, v2) = runs
    assert v1.queries_used == 40 and not first.facts["reused"]
    assert v2.queries_used == 0 and second.facts["reused"] and second.facts["victim_queries"] == 40
    assert (tmp_path / "run1" / "imitation").exists()  # copied into the second run's own directory
    pair = (["river flood"], ["water water flood bank"])
    assert score_texts(second.encoder, *pair) == pytest.approx(score_texts(first.encoder, *pair), abs=1e-5)


def test_imitation_never_trains_on_attacked_queries_and_rejects_bad_settings(tmp_path):
    from rankexp.attacks.imitation import settings, training_queries

    victim = WordVictim()
    ctx = context(victim, tmp_path, queries=("q0", "q1"))
    s = settings(ctx, {})
    assert training_queries(ctx, s) == [f"q{i}" for i in range(2, 8)]
    with pytest.raises(ConfigError, match="pos_depth"):
        settings(ctx, {"pos_depth": 30, "depth": 30})
    with pytest.raises(ConfigError, match="steps"):
        settings(ctx, {"steps": 0})


# ---------------------------------------------------------------------------------------------
# fluency
# ---------------------------------------------------------------------------------------------

def test_bigram_fluency_against_hand_computed_probabilities():
    lm = BigramLM(["a b a", "B, a."], lam=0.5)
    # unigrams a:3 b:2 (N=5, V=2): P_uni(a)=4/8, P_uni(b)=3/8, unseen 1/8
    assert lm.unigram("a") == pytest.approx(0.5) and lm.unigram("zzz") == pytest.approx(1 / 8)
    # bigrams (<s>,a) (a,b) (b,a) (<s>,b) (b,a); histories <s>:2 a:1 b:2
    assert lm.prob("a", "b") == pytest.approx(0.5 * 2 / 2 + 0.5 * 0.5)  # 0.75
    assert lm.prob("b", "a") == pytest.approx(0.5 * 1 + 0.5 * 3 / 8)  # 0.6875
    assert lm.prob("b", "<s>") == pytest.approx(0.5 * 1 / 2 + 0.5 * 3 / 8)  # 0.4375
    assert lm.prob("a", "zzz") == pytest.approx(0.5)  # unseen history: the unigram
    assert lm.fluency(["b", "a"]) == pytest.approx((math.log(0.4375) + math.log(0.75)) / 2)
    assert lm.fluency(["b", "a"], nxt="c") == pytest.approx((math.log(0.4375) + math.log(0.75) + math.log(0.5 / 8)) / 3)
    with pytest.raises(ConfigError):
        BigramLM([], lam=1.0)


# ---------------------------------------------------------------------------------------------
# gradient candidates
# ---------------------------------------------------------------------------------------------

def test_hotflip_picks_the_token_of_largest_first_order_gain():
    from rankexp.attacks.trigger import hotflip_candidates

    emb = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 3.0], [2.0, 2.0], [-5.0, 9.0]])
    grad = torch.tensor([1.0, 0.5])  # gains: 0, 1, 1.5, 3, -0.5
    allowed = torch.tensor([0, 1, 2, 3])  # token 4 (gain -0.5) is not allowed anyway
    assert hotflip_candidates(grad, emb, allowed, 2) == [3, 2]
    assert hotflip_candidates(grad, emb, allowed, 2, exclude=[3]) == [2, 1]


class LinearEncoder(torch.nn.Module):
    """score = w . (sum of the input embeddings): HotFlip's first-order estimate is exact."""

    kind = "cross"

    def __init__(self, tokenizer, dim: int = 4):
        super().__init__()
        torch.manual_seed(1)
        self.tokenizer, self.max_length, self.max_query_length = tokenizer, 64, 16
        self.emb = torch.nn.Embedding(tokenizer.vocab_size, dim)
        self.w = torch.nn.Parameter(torch.randn(dim))

    def input_embeddings(self):
        return self.emb

    def forward_embeds(self, embeds, attention_mask, token_type_ids):
        return (embeds * attention_mask.unsqueeze(-1)).sum(1) @ self.w

    def forward(self, input_ids, attention_mask, token_type_ids=None):
        return self.forward_embeds(self.emb(input_ids), attention_mask, token_type_ids)


def test_trigger_search_finds_the_known_best_token(tiny_encoder):
    from rankexp.attacks.trigger import TriggerAttack

    victim = WordVictim()
    enc = LinearEncoder(tiny_encoder.tokenizer)
    attack = TriggerAttack(budget=2, beam=1, topk=1, anchors=1, margin=1e6, fluency_weight=0.0, semantic_weight=0.0)
    attack.setup(white_box_ctx(victim, enc))
    gains = enc.emb.weight[attack.allowed] @ enc.w
    best = tiny_encoder.tokenizer.convert_ids_to_tokens(int(attack.allowed[int(gains.argmax())]))
    assert best in VOCAB  # vocab=collection: only words of the documents
    p = attack.perturb(Target("d3", ("q9",), {"q9": 20}), white_box_ctx(victim, enc))
    assert p.details["trigger"] == f"{best} {best}"


def test_gradient_of_the_objective_wrt_trigger_embeddings(tiny_encoder):
    """On the linear model with the hinge active, dJ/de_i = w at every trigger position (and zero
    rank gradient once the target beats the anchors by the margin)."""
    from rankexp.attacks.trigger import TriggerAttack

    victim = WordVictim()
    enc = LinearEncoder(tiny_encoder.tokenizer)
    ctx = white_box_ctx(victim, enc)
    attack = TriggerAttack(budget=3, anchors=2, margin=1e6, fluency_weight=0.0, semantic_weight=0.0)
    attack.setup(ctx)
    prep = attack._prepare(Target("d3", ("q9",), {}), ctx, victim.doc_text("d3"))
    trig = [int(attack.allowed[0])] * 3
    g = attack._gradient(trig, prep)
    assert g.shape == (3, enc.w.numel())
    for i in range(3):
        assert torch.allclose(g[i], enc.w.detach(), atol=1e-6)
    for info in prep["queries"].values():  # anchors far below: every hinge is zero, so is the gradient
        info["anchor_scores"] = torch.full_like(info["anchor_scores"], -1e9)
    assert torch.count_nonzero(attack._gradient(trig, prep)) == 0


# ---------------------------------------------------------------------------------------------
# the trigger attack
# ---------------------------------------------------------------------------------------------

def _recompute(attack, encoder, victim, doc_id, text, trigger, qids, anchors, prev, nxt):
    """(T-4) by hand from the perturbed text: re-scored, anchors re-scored, LM rebuilt, embeddings."""
    from rankexp.attacks.imitation import score_texts, tokenize

    per_q = {}
    for q in qids:
        s = score_texts(encoder, [victim.query_text(q)], [text])[0]
        a = score_texts(encoder, [victim.query_text(q)] * len(anchors[q]), [victim.doc_text(d) for d in anchors[q]])
        per_q[q] = -sum(max(0.0, attack.margin - s + x) for x in a) / len(a)
    docs = {d: victim.doc_text(d) for q in ("q8", "q9", "q10", "q11") for d in victim.candidates(q)}
    flu = BigramLM(docs.values(), attack.lm_lambda).fluency(trigger.split(), prev, nxt)
    table = encoder.model.get_input_embeddings().weight.detach()
    tv = table[tokenize(encoder, trigger)].mean(0)
    dv = table[tokenize(encoder, victim.doc_text(doc_id))].mean(0)
    sem = float(torch.nn.functional.cosine_similarity(tv, dv, dim=0))
    return per_q, flu, sem


@pytest.mark.parametrize("position", ["start", 2, "end"])
def test_trigger_within_budget_inserted_where_configured_and_objective_equals_rescoring(tiny_encoder, position):
    from rankexp.attacks.trigger import TriggerAttack

    victim = WordVictim()
    ctx = white_box_ctx(victim, tiny_encoder)
    attack = TriggerAttack(budget=3, position=position, beam=2, topk=3, anchors=2)
    facts = attack.setup(ctx)
    assert facts["surrogate"] == "victim (white box)" and facts["trigger_vocab"] > 5
    original = victim.doc_text("d3")
    p = attack.perturb(Target("d3", ("q9",), {"q9": 20}), ctx)
    trig = p.details["trigger"].split()
    assert len(trig) == 3 == p.changed and p.total_words == len(words(original))
    ow = words(original)
    at = {"start": 0, 2: 2, "end": len(ow)}[position]
    assert words(p.text) == ow[:at] + trig + ow[at:]
    if position == "start":
        assert p.text == p.details["trigger"] + " " + original
    if position == "end":
        assert p.text == original + " " + p.details["trigger"]
    assert p.victim_queries == 0 and victim.queries_used == 0
    prev = "<s>" if at == 0 else lm_words(ow[at - 1])[-1]
    nxt = lm_words(ow[at])[0] if at < len(ow) else None
    per_q, flu, sem = _recompute(attack, tiny_encoder, victim, "d3", p.text, p.details["trigger"], ["q9"], p.details["anchors"],
                                 prev, nxt)
    assert p.details["per_query"]["q9"] == pytest.approx(per_q["q9"], abs=1e-5)
    assert p.details["fluency"] == pytest.approx(flu) and p.details["semantic"] == pytest.approx(sem, abs=1e-5)
    expected = per_q["q9"] + attack.fluency_weight * flu + attack.semantic_weight * sem
    assert p.details["objective"] == pytest.approx(expected, abs=1e-5)
    # the search never ends below its starting trigger ("the the the")
    start = attack._evaluate([[tiny_encoder.tokenizer.convert_tokens_to_ids("the")] * 3], attack._prepare(
        Target("d3", ("q9",), {}), ctx, original))[0]["objective"]
    assert p.details["objective"] >= start - 1e-5


def test_victim_check_counts_victim_queries(tiny_encoder):
    from rankexp.attacks.trigger import TriggerAttack

    victim = WordVictim()
    ctx = white_box_ctx(victim, tiny_encoder)
    attack = TriggerAttack(budget=2, beam=3, topk=2, victim_check=True)
    attack.setup(ctx)
    p = attack.perturb(Target("d5", ("q8",), {"q8": 30}), ctx)
    assert p.victim_queries == 3 == victim.queries_used


@pytest.mark.parametrize("budget", [0, -1, 65, 2.5, True, "3"])
def test_bad_budget_is_a_config_error(budget):
    from rankexp.attacks.topic import TopicAttack
    from rankexp.attacks.trigger import TriggerAttack

    with pytest.raises(ConfigError, match="attack.budget"):
        TriggerAttack(budget=budget)
    with pytest.raises(ConfigError, match="attack.budget"):
        TopicAttack(budget=budget)


def test_bad_options_are_config_errors():
    from rankexp.attacks.topic import TopicAttack
    from rankexp.attacks.trigger import TriggerAttack

    for kw in ({"position": "middle"}, {"position": -1}, {"beam": 0}, {"vocab": "web"}, {"fluency_weight": -1}):
        with pytest.raises(ConfigError):
            TriggerAttack(**kw)
    with pytest.raises(ConfigError, match="aggregate"):
        TopicAttack(aggregate="max")


def test_white_box_needs_a_cross_encoder_and_insert_keeps_the_text():
    from types import SimpleNamespace

    from rankexp.attacks.trigger import TriggerAttack, insert, insertion_point

    ctx = context(WordVictim(), ranker=SimpleNamespace(encoder=SimpleNamespace(kind="bi")))
    with pytest.raises(ConfigError, match="white_box=false"):
        TriggerAttack().setup(ctx)
    text = "Alpha  beta,\ngamma"
    assert insert(text, "x y", insertion_point(text, "start")) == "x y Alpha  beta,\ngamma"
    assert insert(text, "x y", insertion_point(text, 1)) == "Alpha  x y beta,\ngamma"
    assert insert(text, "x y", insertion_point(text, 2)) == "Alpha  beta,\nx y gamma"
    assert insert(text, "x y", insertion_point(text, 9)) == insert(text, "x y", insertion_point(text, "end")) == text + " x y"
    assert insert("", "x", insertion_point("", "start")) == "x"


# ---------------------------------------------------------------------------------------------
# the topic-oriented attack
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("aggregate", ["sum", "mean"])
def test_topic_attack_one_text_for_the_group_objective_is_the_sum_over_queries(tiny_encoder, aggregate):
    from rankexp.attacks.topic import TopicAttack

    victim = WordVictim()
    ctx = white_box_ctx(victim, tiny_encoder)
    attack = TopicAttack(aggregate=aggregate, budget=2, beam=2, topk=3, anchors=2)
    assert attack.groups_queries
    attack.setup(ctx)
    group = ("q8", "q9", "q10")
    p = attack.perturb(Target("d7", group, {q: 25 for q in group}), ctx)
    assert isinstance(p.text, str) and p.text == p.details["trigger"] + " " + victim.doc_text("d7")
    assert set(p.details["per_query"]) == set(group) and p.changed == 2
    per_q, flu, sem = _recompute(attack, tiny_encoder, victim, "d7", p.text, p.details["trigger"], group, p.details["anchors"],
                                 "<s>", lm_words(victim.doc_text("d7"))[0])
    for q in group:
        assert p.details["per_query"][q] == pytest.approx(per_q[q], abs=1e-5)
    total = sum(per_q.values()) / (len(group) if aggregate == "mean" else 1)
    assert p.details["rank_objective"] == pytest.approx(total, abs=1e-5)
    assert p.details["objective"] == pytest.approx(total + attack.fluency_weight * flu + attack.semantic_weight * sem, abs=1e-5)


def test_configs_build_their_attacks():
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    from rankexp.attacks.topic import TopicAttack
    from rankexp.attacks.trigger import TriggerAttack

    for stem, cls in (("pat", TriggerAttack), ("topic", TopicAttack)):
        cfg = OmegaConf.load(Path(__file__).resolve().parents[1] / "rankexp" / "conf" / "attack" / f"{stem}.yaml")
        attack = instantiate(cfg)
        assert type(attack) is cls and attack.budget == cfg.budget


# ---------------------------------------------------------------------------------------------
# end to end through the runner: BM25 victim (black box), imitation model on the train split
# ---------------------------------------------------------------------------------------------

def _e2e(vaswani_slice, tmp_path, attack, name, *extra):
    from rankexp import api

    ovr = ["data=local", f"data.path={vaswani_slice}", f"paths.output_dir={tmp_path}", "logger=none", "eval.rerank_k=20",
           "attack.targets.ranks=[5,20]", "attack.targets.per_query=1", "attack.max_queries=2", f"attack={name}", *extra]
    embed = lambda texts: torch.stack([torch.tensor([float(len(t)), float(t.count(" ")) + 1.0]) for t in texts]).numpy()  # noqa: E731
    return api.attack("bm25", ovr, embed=embed, attack_obj=attack)


IMIT = {"model": TINY, "n_queries": 4, "heldout": 2, "depth": 10, "pos_depth": 3, "steps": 20, "lr": 1e-3}


def test_pat_end_to_end_on_bm25_through_the_imitation_model(vaswani_slice, tmp_path):
    from rankexp.attacks.trigger import TriggerAttack

    r = _e2e(vaswani_slice, tmp_path, TriggerAttack(budget=2, beam=2, topk=3, imitation=IMIT), "pat")
    a = r.metrics["attack"]
    facts = a["setup"]
    assert facts["surrogate"] == "imitation model"
    im = facts["imitation"]
    assert im["train_queries"] == 4 and im["victim_queries"] == 6 * 10 and im["fidelity"]["queries"] == 2
    assert (tmp_path / "attacks").exists() and list((tmp_path / "attacks").glob("*/imitation/*/model.pt"))
    import json

    recs = [json.loads(line) for line in next((tmp_path / "attacks").glob("*/results.jsonl")).read_text().splitlines()]
    assert recs
    for rec in recs:
        trig = rec["perturbed_text"].split()[:2]
        assert len(trig) == 2 and all(t.isalpha() and t.islower() for t in trig)


def test_topic_end_to_end_one_text_per_group(vaswani_slice, tmp_path):
    import json

    from rankexp.attacks.topic import TopicAttack

    r = _e2e(vaswani_slice, tmp_path, TopicAttack(budget=2, beam=2, topk=3, imitation=IMIT), "topic", "attack.topic.group_size=2",
             "attack.max_queries=4")
    recs = [json.loads(line) for line in next((tmp_path / "attacks").glob("*/results.jsonl")).read_text().splitlines()]
    assert recs and all(len(rec["qids"]) == 2 for rec in recs)
    for rec in recs:  # one perturbed text per group, re-scored by the victim for each of its queries
        assert [p["qid"] for p in rec["pairs"]] == rec["qids"] and set(rec["details"]["per_query"]) == set(rec["qids"])
        assert rec["perturbed_text"].startswith(rec["details"]["trigger"] + " ") and rec["changed"] == 2
        assert rec["details"]["rank_objective"] == pytest.approx(sum(rec["details"]["per_query"].values()))


@pytest.mark.slow
def test_pat_with_the_real_minilm_imitation_model_on_bm25(vaswani_slice, tmp_path):
    """The default encoder (all-MiniLM-L6-v2, fresh head) as the imitation model, a few steps."""
    from rankexp.attacks.trigger import TriggerAttack

    imit = {"n_queries": 3, "heldout": 1, "depth": 8, "pos_depth": 2, "steps": 4, "batch_pairs": 4,
            "model": {"name": "all-MiniLM-L6-v2", "max_length": 128, "max_query_length": 24, "dropout": 0.0}}
    r = _e2e(vaswani_slice, tmp_path, TriggerAttack(budget=3, beam=2, topk=3, imitation=imit), "pat", "attack.max_queries=1")
    a = r.metrics["attack"]
    assert a["setup"]["imitation"]["victim_queries"] == 4 * 8 and a["targets"] == 1
    assert a["perturbation_pct"] > 0
