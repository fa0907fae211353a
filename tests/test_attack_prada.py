"""attack=prada: synonym sources, the gradient surrogate and the word-substitution attack, on crafted
models, victims and documents whose outcome is computed by hand."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from rankexp.attacks import synonyms as syn
from rankexp.attacks.base import AttackContext, Target, join_words, words
from rankexp.attacks.surrogate import Surrogate
from rankexp.attacks.word_substitution import WordSubstitution, split_word
from rankexp.errors import ConfigError
from tests.conftest import DATA


# ------------------------------------------------------------------------------------------ WordNet
@pytest.fixture(scope="module")
def wordnet():
    return syn.WordNetSynonyms(max_candidates=10)


def test_wordnet_synonyms_of_known_words(wordnet):
    car = wordnet.candidates("car", 10)
    assert car[:4] == ["auto", "automobile", "machine", "motorcar"]  # car.n.01's lemmas, in WordNet's order
    assert "car" not in [c.lower() for c in car]
    assert all(c.isalpha() for c in car)  # railway_car, railroad_car, elevator_car left out
    # an inflected form: synonyms of its base, never the base itself; the casing of the word is kept
    cars = wordnet.candidates("Cars", 10)
    assert cars[:2] == ["Auto", "Automobile"] and "Car" not in cars
    assert wordnet.candidates("QUICK", 3) == ["SPEEDY", "FLYING", "FAST"]
    assert wordnet.candidates("the", 5) == [] and wordnet.candidates("x-ray", 5) == [] and wordnet.candidates("", 5) == []
    assert wordnet.candidates("car", 2) == ["auto", "automobile"]
    assert syn.WordNetSynonyms(max_candidates=1).candidates("car", 10) == ["auto"]
    assert syn.WordNetSynonyms(max_candidates=10).candidates("car", 10) == car  # deterministic


def test_wordnet_missing_is_one_line(monkeypatch, tmp_path):
    monkeypatch.setattr(syn, "_WORDNET", None)
    monkeypatch.setattr(syn, "nltk_data_dirs", lambda: [tmp_path / "nltk_data"])
    with pytest.raises(ConfigError) as e:
        syn.WordNetSynonyms(max_candidates=5)
    assert "NLTK_DATA" in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(ConfigError):
        syn.WordNetSynonyms(max_candidates=0)


# ------------------------------------------------------------------------------- embedding neighbours
def crafted_neighbours(threshold=None, same_stem=True):
    vocab = {"[CLS]": 0, "##ing": 1, "car": 2, "auto": 3, "truck": 4, "the": 5, "banana": 6, "x1": 7, "cars": 8}
    e = torch.tensor([[1.0, 0, 0], [1.0, 0, 0], [1.0, 0, 0], [0.9, 0.1, 0], [0.6, 0.8, 0], [1.0, 0, 0],
                      [0.0, 0, 1.0], [1.0, 0, 0], [1.0, -0.05, 0]])
    return syn.EmbeddingNeighbours(e, vocab, threshold=threshold, skip_same_stem=same_stem)


def test_embedding_neighbours_on_a_crafted_matrix():
    nb = crafted_neighbours()
    # cos(car, auto) = 0.9/sqrt(0.82) = 0.9939, cos(car, truck) = 0.6, cos(car, banana) = 0; [CLS], ##ing,
    # the (a stopword), x1 (not alphabetic) and cars (car's own inflection) point the same way as car but are
    # never candidates
    assert nb.candidates("car", 5) == ["auto", "truck", "banana"]
    assert crafted_neighbours(same_stem=False).candidates("car", 2) == ["cars", "auto"]
    assert syn.same_stem("stability", "instability") and syn.same_stem("stability", "stable") and not syn.same_stem("car", "truck")
    sims = dict(nb.neighbours("car"))
    assert sims["auto"] == pytest.approx(0.9 / math.sqrt(0.82), abs=1e-6) and sims["truck"] == pytest.approx(0.6, abs=1e-6)
    assert nb.candidates("Car", 2) == ["Auto", "Truck"]
    # auto's nearest: car (0.9939) before truck ((0.54 + 0.08) / 0.9055 = 0.6847)
    assert nb.candidates("auto", 1) == ["car"]
    assert crafted_neighbours(threshold=0.5).candidates("car", 5) == ["auto", "truck"]
    assert nb.candidates("lorry", 5) == [] and nb.candidates("ing", 5) == []  # not a whole-word entry
    with pytest.raises(ConfigError):
        crafted_neighbours(threshold=2.0)


def test_union_interleaves_and_drops_duplicates():
    a = SimpleNamespace(name="a", candidates=lambda w, k: ["x", "y", "z"][:k])
    b = SimpleNamespace(name="b", candidates=lambda w, k: ["y", "w"][:k])
    u = syn.SynonymUnion([a, b])
    assert u.name == "a+b"
    assert u.candidates("car", 10) == ["x", "y", "w", "z"]
    assert u.candidates("car", 2) == ["x", "y"]


# ------------------------------------------------------------------------------------------ surrogate
@pytest.fixture(scope="module")
def tokenizer():
    from rankexp.models.encoders import load_tokenizer

    return load_tokenizer("all-MiniLM-L6-v2")


class Body(nn.Module):
    def __init__(self, emb: nn.Embedding):
        super().__init__()
        self.emb = emb

    def get_input_embeddings(self):
        return self.emb


class CraftedCross(nn.Module):
    """A cross-encoder whose score is known in closed form: over the document segment (token type 1),
    ``s = sum_t m_t * phi(e_t . w)`` with ``m_t = 1`` for the ``only`` token ids (all tokens if None) and
    ``phi`` the identity (``linear``) or the square."""

    kind = "cross"

    def __init__(self, tokenizer, emb_rows: dict[str, list[float]], w, only=None, square=False, max_length=64, max_query_length=16):
        super().__init__()
        self.tokenizer, self.max_length, self.max_query_length = tokenizer, max_length, max_query_length
        weight = torch.zeros(tokenizer.vocab_size, len(w))
        for word, row in emb_rows.items():
            weight[tokenizer.convert_tokens_to_ids(word)] = torch.tensor(row)
        self.model = Body(nn.Embedding.from_pretrained(weight, freeze=True))
        self.w = torch.tensor(w, dtype=torch.float)
        self.only = None if only is None else torch.tensor([tokenizer.convert_tokens_to_ids(x) for x in only])
        self.square = square

    def forward(self, input_ids, attention_mask, token_type_ids=None):
        e = self.model.get_input_embeddings()(input_ids)
        proj = e @ self.w
        val = proj * proj if self.square else proj
        mask = (token_type_ids == 1) & (attention_mask == 1)
        if self.only is not None:
            mask = mask & torch.isin(input_ids, self.only)
        return (val * mask).sum(1)


def test_surrogate_gradients_of_a_model_where_one_word_matters(tokenizer):
    # only 'apple' tokens in the document count: s = sum over them of e . w, e(apple) = (1, 2, 0), w = (3, 4, 0)
    model = CraftedCross(tokenizer, {"apple": [1.0, 2.0, 0.0], "red": [5.0, 5.0, 5.0]}, [3.0, 4.0, 0.0], only=["apple"])
    text = "the apple is red, apple!"
    g = Surrogate(SimpleNamespace(encoder=model, description="crafted")).word_gradients("apple pie", text)
    assert g.words == words(text)
    assert g.score == pytest.approx(22.0)  # two apples in the document, 11 each; the query's apple is type 0
    assert g.importance == pytest.approx([0.0, 5.0, 0.0, 0.0, 5.0])  # ||w|| = 5 for each apple, 0 elsewhere
    gx = Surrogate(model, importance="grad_x_emb").word_gradients("apple pie", text)
    assert gx.importance == pytest.approx([0.0, 11.0, 0.0, 0.0, 11.0])  # |g . e| = |w . e(apple)|
    s = Surrogate(model)
    assert s.score_texts("apple pie", [text, "no fruit here", "apple"]) == pytest.approx([22.0, 0.0, 11.0])


def test_surrogate_maps_word_pieces_to_words_and_truncation(tokenizer):
    # every document token counts with gradient w: a word of m pieces has importance ||w|| sqrt(m)
    model = CraftedCross(tokenizer, {}, [3.0, 4.0, 0.0])
    pieces = len(tokenizer("unbelievably", add_special_tokens=False)["input_ids"])
    assert pieces > 1
    g = Surrogate(model).word_gradients("q", "an unbelievably long, word")
    punct = len(tokenizer("long,", add_special_tokens=False)["input_ids"])  # 'long' ','
    assert g.importance == pytest.approx([5.0, 5.0 * math.sqrt(pieces), 5.0 * math.sqrt(punct), 5.0])
    # max_length 8 = [CLS] q [SEP] + 4 document tokens + [SEP]; the fifth word is cut off
    short = CraftedCross(tokenizer, {}, [3.0, 4.0, 0.0], max_length=8, max_query_length=4)
    g = Surrogate(short).word_gradients("q", "one two three four five")
    assert g.importance == pytest.approx([5.0, 5.0, 5.0, 5.0, 0.0]) and g.token_words == [0, 1, 2, 3]


TINY = dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
            hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)


@pytest.mark.parametrize("kind", ["cross", "bi"])
def test_surrogate_on_tiny_rankexp_models_agrees_with_their_scorers(kind):
    """The surrogate's score of a text equals what the rankexp scorer gives the same pair from tokens."""
    from rankexp.data.tokens import BiPairEncoder, PairEncoder, TokenTable

    torch.manual_seed(0)
    if kind == "cross":
        from rankexp.models.encoders import CrossEncoder

        enc = CrossEncoder(tiny=TINY, max_length=40, max_query_length=8)
    else:
        from rankexp.models.biencoder import BiEncoder

        enc = BiEncoder(tiny=TINY, max_length=20, max_query_length=8)
    enc.eval()
    query, docs = "cheap electric cars", ["Electric automobiles, and their batteries.", "A poem about the sea " * 6]
    s = Surrogate(enc)
    got = s.score_texts(query, docs)
    assert [s.word_gradients(query, d).score for d in docs] == pytest.approx(got, abs=1e-5)

    def table(texts, limit):
        rows = enc.tokenizer(texts, add_special_tokens=False, truncation=True, max_length=limit)["input_ids"]
        flat = [t for r in rows for t in r]
        import numpy as np

        return TokenTable([str(i) for i in range(len(texts))], np.asarray(flat, dtype=np.int32),
                          np.cumsum([0] + [len(r) for r in rows]).astype(np.int64))

    d, q = table(docs, enc.max_length), table([query], enc.max_query_length)
    pe = (PairEncoder if kind == "cross" else BiPairEncoder)(enc.tokenizer, d, q, enc.max_length, enc.max_query_length)
    with torch.no_grad():
        ref = enc(**pe.encode(["0", "0"], ["0", "1"]))
    assert got == pytest.approx(ref.tolist(), abs=1e-5)
    g = s.word_gradients(query, docs[0])
    assert len(g.importance) == len(words(docs[0])) and all(v > 0 for v in g.importance)


def test_surrogate_on_a_hugging_face_cross_encoder(tokenizer, tmp_path):
    from transformers import BertConfig, BertForSequenceClassification

    from rankexp.pipeline.loading import HFCrossEncoder

    cfg = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                     intermediate_size=32, max_position_embeddings=128, num_labels=1)
    torch.manual_seed(0)
    BertForSequenceClassification(cfg).save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    enc = HFCrossEncoder(str(tmp_path), max_length=64, max_query_length=8)
    s = Surrogate(enc)
    text = "Electric automobiles, and their batteries."
    g = s.word_gradients("cheap cars", text)
    assert g.score == pytest.approx(s.score_texts("cheap cars", [text])[0], abs=1e-5)
    assert len(g.importance) == 5 and all(v > 0 for v in g.importance) and sorted(g.grad_vectors) == [0, 1, 2, 3, 4]
    assert all(p.grad is None for p in enc.parameters())  # the weights' gradients are left alone


# ------------------------------------------------------------------------------------------ the attack
class CountingVictim:
    """A black box: the score of a text is the number of its words whose core (punctuation stripped,
    lower case) is in ``good``, minus the number in ``bad``. Counts pairs and calls."""

    name, kind = "counting", "cross"

    def __init__(self, docs: dict[str, str], queries: dict[str, str], others: dict[str, float], good=("automobile",), bad=()):
        self.docs, self.queries, self.others = docs, queries, others
        self.good, self.bad = set(good), set(bad)
        self.queries_used = 0
        self.calls = 0

    def _score(self, text: str) -> float:
        cores = [split_word(w)[1].lower() for w in words(text)]
        return float(sum(c in self.good for c in cores) - sum(c in self.bad for c in cores))

    def query_text(self, qid):
        return self.queries[qid]

    def doc_text(self, doc_id):
        return self.docs[doc_id]

    def candidates(self, qid):
        return {**self.others, **{d: self._score(t) for d, t in self.docs.items()}}

    def score_texts(self, qid, texts, count=True):
        if count:
            self.queries_used += len(texts)
            self.calls += 1
        return [self._score(t) for t in texts]

    def rank_with(self, qid, doc_id, score):
        return 1 + sum(1 for d, s in self.candidates(qid).items() if d != doc_id and s >= score)


class MapSource:
    name = "crafted"

    def __init__(self, table: dict[str, list[str]]):
        self.table = table

    def candidates(self, word, k):
        return [syn.match_case(word, c) for c in self.table.get(word.lower(), [])][:k]


SOURCE = {"car": ["auto", "automobile", "machine"], "fast": ["quick"], "red": ["crimson"], "parts": ["components"],
          "cost": ["price"]}
DOC = "the car is fast and the car is red and the car, parts cost money"  # 15 words; car at 1, 6, 11


def surrogate_model(tokenizer):
    # s = sum over document tokens of (e . w)^2 with e . w = 1 (car), 2 (automobile), 0.5 (auto), 0 otherwise:
    # dS/de = 2 (e . w) w, so car is the only important word and automobile its best substitute
    return CraftedCross(tokenizer, {"car": [1.0, 0.0], "automobile": [2.0, 0.0], "auto": [0.5, 0.0]}, [1.0, 0.0], square=True)


def context(victim, tokenizer, white_box=True, ranker="crafted") -> AttackContext:
    r = SimpleNamespace(encoder=surrogate_model(tokenizer), description="crafted surrogate") if ranker == "crafted" else ranker
    return AttackContext(cfg=None, victim=victim, ranker=r, white_box=white_box, seed=0, queries=["q1"])


def attack_once(tokenizer, others, budget=20, query="cheap vehicles", doc=DOC, source=SOURCE, **kw):
    victim = CountingVictim({"t": doc}, {"q1": query}, others, **{k: kw.pop(k) for k in ("good", "bad") if k in kw})
    attack = WordSubstitution(budget=budget, candidates=5, source=MapSource(source), **kw)
    facts = attack.setup(context(victim, tokenizer))
    p = attack.perturb(Target("t", ("q1",), {"q1": victim.rank_with("q1", "t", 0.0)}), context(victim, tokenizer))
    return p, victim, facts


def check_invariants(p, victim, source, query="cheap vehicles"):
    old, new = words(p.original), words(p.text)
    assert len(old) == len(new) == p.total_words
    diff = [i for i, (a, b) in enumerate(zip(old, new)) if a != b]
    assert p.changed == len(diff) == len(p.details["swaps"]) <= math.floor(p.details["max_changes"])
    assert sorted(s[0] for s in p.details["swaps"]) == diff
    qwords = {split_word(w)[1].lower() for w in words(query)}
    for i, was, now in p.details["swaps"]:
        (lo, core, tr), (lo2, core2, tr2) = split_word(was), split_word(now)
        assert (lo, tr) == (lo2, tr2) and old[i] == was and new[i] == now  # punctuation kept
        assert core.lower() not in syn.STOPWORDS and core.lower() not in qwords
        assert core2 in source.candidates(core, 50)  # really from the synonym source
    assert p.victim_queries == victim.queries_used == victim.calls  # one text per call here


def test_attack_swaps_important_words_greedily_within_budget(tokenizer):
    others = {"d1": 3.0, "d2": 2.0, "d3": 1.0}
    p, victim, facts = attack_once(tokenizer, others)
    assert facts["surrogate"] == "victim" and facts["synonyms"] == "crafted"
    # budget floor(20 % of 15) = 3; each car -> automobile raises the victim's score by 1
    assert p.details["max_changes"] == 3
    assert p.details["swaps"] == [[1, "car", "automobile"], [6, "car", "automobile"], [11, "car,", "automobile,"]]
    assert p.text == "the automobile is fast and the automobile is red and the automobile, parts cost money"
    assert p.percent == pytest.approx(20.0)
    check_invariants(p, victim, MapSource(SOURCE))
    assert p.victim_queries == 3 == p.details["checked"]  # the original's score came free from candidates()
    # the reported score and rank equal re-scoring the perturbed text: 3 ties d1 (ties go against the target)
    rescored = victim.score_texts("q1", [p.text], count=False)[0]
    assert p.details["victim_score_after"] == rescored == 3.0
    assert victim.rank_with("q1", "t", rescored) == 2 and p.details["reached_top"] is False
    # deterministic
    p2, _, _ = attack_once(tokenizer, others)
    assert (p2.text, p2.details["swaps"], p2.victim_queries) == (p.text, p.details["swaps"], p.victim_queries)


def test_attack_stops_at_the_top_and_respects_smaller_budgets(tokenizer):
    p, victim, _ = attack_once(tokenizer, {"d1": 1.5})  # two swaps give 2 > 1.5: rank 1, stop
    assert len(p.details["swaps"]) == 2 and p.details["reached_top"] is True and p.victim_queries == 2
    check_invariants(p, victim, MapSource(SOURCE))
    p, victim, _ = attack_once(tokenizer, {"d1": 3.0}, budget=10)  # floor(1.5) = 1
    assert p.details["swaps"] == [[1, "car", "automobile"]] and p.changed == 1
    check_invariants(p, victim, MapSource(SOURCE))
    p, victim, _ = attack_once(tokenizer, {"d1": 3.0}, budget=5)  # floor(0.75) = 0: nothing may change
    assert p.changed == 0 and p.victim_queries == 0 and p.text == join_words(words(DOC))


def test_a_swap_is_kept_only_if_the_victim_score_rises(tokenizer):
    # this victim dislikes automobiles: every check is paid for, none is kept
    p, victim, _ = attack_once(tokenizer, {"d1": 3.0}, good=(), bad=("automobile",))
    assert p.changed == 0 and p.details["swaps"] == [] and p.text == join_words(words(DOC))
    assert p.victim_queries == victim.queries_used == 3 == p.details["checked"]  # one check per car
    # more checks per word: auto (the surrogate's second choice, 0.25 < 1 = car) brings no surrogate gain,
    # so it is not sent unless the gain requirement is off; then the victim sees auto too and keeps it
    p, victim, _ = attack_once(tokenizer, {"d1": 3.0}, good=("auto",), bad=("automobile",), victim_checks=3,
                               require_surrogate_gain=False)
    assert [s[2] for s in p.details["swaps"]] == ["auto", "auto", "auto,"]
    assert p.victim_queries == 6  # per car: automobile (rejected), then auto (kept)
    check_invariants(p, victim, MapSource(SOURCE))


def test_choose_nearest_follows_the_gradient_step(tokenizer):
    rows = {"car": [1.0, 0.0], "auto": [1.5, 0.0], "automobile": [3.0, 0.0]}
    assert all(len(tokenizer(w, add_special_tokens=False)["input_ids"]) == 1 for w in rows)

    def swapped_in(**kw):
        victim = CountingVictim({"t": DOC}, {"q1": "cheap vehicles"}, {"d1": 9.0}, good=("auto", "automobile"))
        ranker = SimpleNamespace(encoder=CraftedCross(tokenizer, rows, [1.0, 0.0], square=True), description="crafted")
        ctx = context(victim, tokenizer, ranker=ranker)
        attack = WordSubstitution(budget=20, candidates=5, source=MapSource(SOURCE), **kw)
        attack.setup(ctx)
        p = attack.perturb(Target("t", ("q1",), {"q1": 2}), ctx)
        check_invariants(p, victim, MapSource(SOURCE))
        return [split_word(s[2])[1] for s in p.details["swaps"]]

    # score: s(automobile) = 9 > s(auto) = 2.25 > s(car) = 1
    assert swapped_in() == ["automobile"] * 3
    # nearest (eq. 3): g = 2 (e . w) w = (2, 0) at car, e(car) = (1, 0), ||e|| = 1: epsilon 0.5 moves to
    # (1.5, 0) = e(auto), epsilon 2 to (3, 0) = e(automobile)
    assert swapped_in(choose="nearest", epsilon=0.5) == ["auto"] * 3
    assert swapped_in(choose="nearest", epsilon=2.0) == ["automobile"] * 3


def test_only_allowed_words_change(tokenizer):
    # car occurs in the query: with keep_query_words it stays; fast/red/parts/cost bring the surrogate nothing
    p, victim, _ = attack_once(tokenizer, {"d1": 3.0}, query="car prices")
    assert p.changed == 0 and p.victim_queries == 0
    p, victim, _ = attack_once(tokenizer, {"d1": 3.0}, query="car prices", keep_query_words=False)
    assert p.changed == 3
    # stopwords never change, even with a synonym on offer and a victim that would reward it
    p, victim, _ = attack_once(tokenizer, {"d1": 3.0}, source={**SOURCE, "the": ["automobile"]}, require_surrogate_gain=False)
    assert all(s[1] != "the" for s in p.details["swaps"])
    check_invariants(p, victim, MapSource({**SOURCE, "the": ["automobile"]}))


def test_attack_with_wordnet_and_a_random_tiny_surrogate(tokenizer, wordnet):
    from rankexp.models.encoders import CrossEncoder

    torch.manual_seed(0)
    enc = CrossEncoder(tiny=TINY, max_length=64, max_query_length=8)
    victim = CountingVictim({"t": DOC}, {"q1": "cheap vehicles"}, {"d1": 5.0}, good=("automobile", "auto", "machine"))
    ctx = AttackContext(cfg=None, victim=victim, ranker=SimpleNamespace(encoder=enc, description="tiny"), white_box=True,
                        seed=0, queries=["q1"])
    attack = WordSubstitution(budget=20, candidates=10, synonyms="wordnet", victim_checks=10, require_surrogate_gain=False)
    facts = attack.setup(ctx)
    assert facts["synonyms"] == "wordnet"
    p = attack.perturb(Target("t", ("q1",), {"q1": 2}), ctx)
    assert p.changed == 3  # each car finds a rewarded WordNet synonym within 10 checks
    check_invariants(p, victim, wordnet)
    # both sources: WordNet and the surrogate's own input embeddings, interleaved
    both = WordSubstitution(budget=20, candidates=4, synonyms="both", embedding_threshold=-1.0)
    assert both.setup(ctx)["synonyms"] == "wordnet+embedding"
    emb = syn.EmbeddingNeighbours.from_encoder(enc, threshold=-1.0)
    got = both.source.candidates("car", 4)
    assert got[0] == "auto" and got[1] == emb.candidates("car", 1)[0] and len(got) == 4


def test_surrogate_imitation_uses_the_imitation_model(tokenizer, monkeypatch):
    import rankexp.attacks.imitation as imitation

    calls = []

    def fake_train(ctx):
        calls.append(ctx)
        return SimpleNamespace(encoder=surrogate_model(tokenizer), description="imitation", facts={"fidelity": {"rbo": 0.5}})

    monkeypatch.setattr(imitation, "train_imitation", fake_train)
    for kind in ("imitation", "auto"):  # auto: no white box, no victim model -> the imitation model
        victim = CountingVictim({"t": DOC}, {"q1": "cheap vehicles"}, {"d1": 3.0})
        ctx = context(victim, tokenizer, white_box=False, ranker=None)  # black box: no victim model at all
        attack = WordSubstitution(budget=20, candidates=5, surrogate=kind, source=MapSource(SOURCE))
        facts = attack.setup(ctx)
        assert calls[-1] is ctx and facts["surrogate"] == "imitation" and facts["imitation"] == {"fidelity": {"rbo": 0.5}}
        p = attack.perturb(Target("t", ("q1",), {"q1": 2}), ctx)
        assert p.changed == 3 and p.details["surrogate"] == "imitation"
        check_invariants(p, victim, MapSource(SOURCE))
    assert len(calls) == 2
    # auto with a white box and a neural victim: the victim's own model, no imitation training
    assert WordSubstitution(source=MapSource(SOURCE)).setup(context(victim, tokenizer))["surrogate"] == "victim"
    assert WordSubstitution(source=MapSource(SOURCE)).setup(context(victim, tokenizer, white_box=False))["surrogate"] == "imitation"
    assert len(calls) == 3


@pytest.mark.parametrize("bad", [dict(budget=0), dict(budget=150), dict(budget=-0.1), dict(budget="ten"),
                                 dict(candidates=0), dict(synonyms="thesaurus"), dict(surrogate="oracle"),
                                 dict(importance="saliency"), dict(victim_checks=0), dict(embedding_threshold=3),
                                 dict(choose="random"), dict(epsilon=0)])
def test_bad_settings_are_one_line(bad):
    with pytest.raises(ConfigError) as e:
        WordSubstitution(**bad)
    assert "\n" not in str(e.value) and "attack." in str(e.value)


def test_the_surrogate_must_be_allowed(tokenizer, monkeypatch):
    victim = CountingVictim({"t": DOC}, {"q1": "q"}, {})
    with pytest.raises(ConfigError, match="white-box"):
        WordSubstitution(surrogate="victim", source=MapSource(SOURCE)).setup(context(victim, tokenizer, white_box=False))
    with pytest.raises(ConfigError, match="neural victim"):
        WordSubstitution(surrogate="victim", source=MapSource(SOURCE)).setup(context(victim, tokenizer, ranker=None))
    monkeypatch.setitem(sys.modules, "rankexp.attacks.imitation", None)  # the module absent
    with pytest.raises(ConfigError, match="surrogate=imitation needs rankexp.attacks.imitation"):
        WordSubstitution(surrogate="imitation", source=MapSource(SOURCE)).setup(context(victim, tokenizer, white_box=False))


def test_the_config_file_builds_the_attack():
    from omegaconf import OmegaConf

    from rankexp.config.compose import build

    node = OmegaConf.load(Path(__file__).resolve().parents[1] / "rankexp" / "conf" / "attack" / "prada.yaml")
    attack = build(node, "attack")
    assert isinstance(attack, WordSubstitution) and attack.budget == 10 and attack.k == 20 and attack.surrogate_kind == "auto"
    node.budget = 0
    with pytest.raises(ConfigError, match="budget"):
        build(node, "attack")


# ------------------------------------------------------------------------------------------ end to end
def bag_of_words(texts):
    """A tiny stand-in for the sentence encoder of the similarity measure: hashed word counts."""
    import numpy as np

    out = np.zeros((len(texts), 64))
    for i, t in enumerate(texts):
        for w in words(t.lower()):
            out[i, sum(map(ord, w)) % 64] += 1.0
    return out


def test_rankexp_attack_with_prada_on_a_tiny_white_box_victim(vaswani_slice, tmp_path, tokenizer):
    """``api.attack(VICTIM, ["attack=prada", ...])``: the config composes, the run completes, and every
    record's swaps respect the budget and come from WordNet; the runner's re-scored ranks are the
    victim's."""
    from rankexp import api
    from tests.conftest import save_tiny_hf_cross

    victim_dir = save_tiny_hf_cross(tmp_path / "hf_cross", tokenizer, max_positions=256)
    over = ["attack=prada", "data=local", f"data.path={vaswani_slice}", f"paths.output_dir={tmp_path}", "logger=none",
            "eval.rerank_k=20", "model.encoder.max_length=128", "attack.targets.ranks=[5,20]", "attack.max_queries=2",
            "attack.white_box=true", "attack.budget=20", "attack.candidates=5", "attack.victim_checks=3"]
    r = api.attack(victim_dir, over, embed=bag_of_words)
    a = r.metrics["attack"]
    assert a["targets"] == len(r.records) >= 2 and a["setup"]["surrogate"] == "victim"
    wn = syn.WordNetSynonyms(max_candidates=5)
    for rec in r.records:
        swaps = rec["details"]["swaps"]
        assert rec["changed"] == len(swaps) <= math.floor(0.2 * rec["total_words"] + 1e-9)
        for _, was, now in swaps:
            assert split_word(now)[1].lower() in [c.lower() for c in wn.candidates(split_word(was)[1], 5)]
        assert rec["victim_queries"] == rec["details"]["checked"]
        pair = rec["pairs"][0]
        assert pair["new_score"] == pytest.approx(rec["details"]["victim_score_after"], abs=1e-4)
        assert pair["new_score"] >= pair["old_score"] - 1e-6  # only rises are kept
    # the same run again: complete, skipped, the same measures
    again = api.attack(victim_dir, over, embed=bag_of_words)
    assert again.skipped and again.metrics["attack"]["avg_boost"] == a["avg_boost"]


# ------------------------------------------------------------------------------------------ real model
@pytest.mark.slow
def test_prada_on_the_real_minilm_bi_encoder_one_vaswani_query(wordnet):
    """White-box PRADA against all-MiniLM-L6-v2 (a bi-encoder) on one vaswani query: the invariants
    hold and the victim's score of the target does not fall."""
    import time

    from rankexp.pipeline.loading import load_ranker

    t0 = time.perf_counter()
    ranker = load_ranker("all-MiniLM-L6-v2")
    model = Surrogate(ranker)
    vas = DATA / "vaswani"
    queries = dict(l.split("\t", 1) for l in (vas / "queries.tsv").read_text().splitlines())
    docs = {}
    for line in (vas / "corpus.jsonl").read_text().splitlines()[:60]:
        d = json.loads(line)
        docs[d["doc_id"]] = (d.get("title", "") + " " + d["text"]).strip()

    class ModelVictim(CountingVictim):
        def _score(self, text):
            return model.score_texts(self.queries["1"], [text])[0]

    victim = ModelVictim({}, {"1": queries["1"]}, {})
    scores = dict(zip(docs, model.score_texts(queries["1"], list(docs.values()))))
    ranked = sorted(scores, key=lambda d: -scores[d])
    target = ranked[30]
    victim.docs = {target: docs[target]}
    victim.others = {d: s for d, s in scores.items() if d != target}
    ctx = AttackContext(cfg=None, victim=victim, ranker=ranker, white_box=True, seed=0, queries=["1"])
    attack = WordSubstitution(budget=20, candidates=10, victim_checks=2)
    attack.setup(ctx)
    p = attack.perturb(Target(target, ("1",), {"1": 31}), ctx)
    check_invariants(p, victim, wordnet, query=queries["1"])
    after = victim.score_texts("1", [p.text], count=False)[0]
    assert after == pytest.approx(p.details["victim_score_after"], abs=1e-5)
    assert after >= scores[target] - 1e-6
    assert p.changed == 0 or after > scores[target]
    print(f"\nrank 31 -> {victim.rank_with('1', target, after)}, {p.changed}/{p.total_words} words, "
          f"{p.victim_queries} victim queries, {time.perf_counter() - t0:.1f} s; swaps {p.details['swaps']}")
    assert time.perf_counter() - t0 < 60
