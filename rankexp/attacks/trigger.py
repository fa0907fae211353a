"""PAT: trigger tokens that promote a document, found by gradient-guided beam search on a surrogate.

Liu et al., "Order-Disorder: Imitation Adversarial Attacks for Black-box Neural Ranking Models"
(arXiv 2209.06506, CIKM 2022). The black-box victim is imitated (:mod:`rankexp.attacks.imitation`);
a short trigger is inserted into the target document and its tokens are chosen on the imitation
model (or on the victim itself with ``white_box``) so that the document overtakes the documents
ranked above it, while staying fluent. We could not read the paper's method section (only its
abstract and the topic-oriented follow-up's summary), so the equations below are our formulation of
what those describe; the numbering (T-1 ..) is ours, not the paper's.

For a target document ``d``, a trigger ``t = (t_1 .. t_k)`` inserted at word ``position`` gives
``d ⊕ t``; ``f`` is the surrogate's score. For each attacked query ``q`` (one query here; a topic
group in :mod:`rankexp.attacks.topic`), the anchors ``A_q`` are the ``anchors`` documents ranked
highest by the victim for ``q`` (the ranked list the attacker observed; the target excluded):

    R_q(t) = -1/|A_q| * sum_{a in A_q} max(0, margin - f(q, d ⊕ t) + f(q, a))                 (T-1)
    F(t)   = 1/(k+1) * sum_{i=1..k+1} log P_LM(t_i | t_{i-1})  (t_0 / t_{k+1}: the words around t)  (T-2)
    S(t)   = cos(mean_i E[t_i], mean_{w in d} E[w])   (E: the surrogate's input embedding table)   (T-3)
    J(t)   = sum_q R_q(t) + fluency_weight * F(t) + semantic_weight * S(t)                     (T-4)

* (T-1) is the pairwise ranking objective: the target should beat each anchor by ``margin``.
* (T-2) replaces the paper's pre-trained language model by the bigram model of
  :mod:`rankexp.attacks.fluency`, estimated on the attacked queries' candidate documents (no causal
  LM is available offline). It is used to rank beam candidates, not in the gradient.
* (T-3) is our stand-in for the paper's semantic-consistency constraint (keep the trigger on the
  document's topic); set ``semantic_weight: 0`` to drop it.

**Search** (HotFlip-style, Ebrahimi et al. 2018): start from ``k`` copies of ``init_token``. For
each position ``i`` (left to right, ``passes`` times) and each beam member, the gradient
``g_i = dJ/de_i`` w.r.t. the trigger token's input embedding gives the first-order gain of
replacing ``t_i`` by ``w``: ``(E_w - e_i) . g_i``; the ``topk`` best allowed tokens become
candidates, every candidate trigger is scored exactly by (T-4), and the ``beam`` best survive.
Allowed tokens are whole lower-case alphabetic words of the tokenizer's vocabulary that
re-tokenize to themselves (so the trigger's text scores exactly as searched), of at least
``min_token_len`` letters, and (``vocab: collection``) seen by the language model.

**Victim queries.** None by default: the search runs on the surrogate and the runner's re-scoring of
the result is not the attack's. With ``victim_check: true`` the final beam's members are scored by
the victim (counted: ``beam`` pairs per query) and the best by the victim's mean rank is kept.

``Perturbation.changed`` is the number of trigger words (= ``budget``); ``details`` holds the
trigger, its position, ``objective`` (T-4) recomputed from the perturbed text, ``rank_objective``
(the sum in T-4), ``fluency`` (T-2), ``semantic`` (T-3) and per-query surrogate scores.
"""

from __future__ import annotations

import logging
import re
from typing import Any, Sequence

import torch

from rankexp.attacks.base import Attack, AttackContext, Perturbation, Target, words
from rankexp.attacks.fluency import BOS, BigramLM, lm_words
from rankexp.errors import ConfigError

log = logging.getLogger(__name__)

MAX_BUDGET = 64
_WORD_RE = re.compile(r"\S+")
_ALPHA = re.compile(r"^[a-z]+$")


def hotflip_candidates(grad: torch.Tensor, embedding: torch.Tensor, allowed: torch.Tensor, k: int,
                       exclude: Sequence[int] = ()) -> list[int]:
    """The ``k`` allowed token ids with the largest first-order gain ``E_w . g`` (the current
    token's term ``-e_i . g`` is the same for every ``w``), best first; ``exclude`` ids skipped."""
    gain = embedding[allowed].float() @ grad.float()
    if exclude:
        gain = gain.masked_fill(torch.isin(allowed, torch.as_tensor(list(exclude), dtype=allowed.dtype, device=allowed.device)),
                                float("-inf"))
    top = torch.topk(gain, min(int(k), int(allowed.numel()))).indices
    return [int(allowed[i]) for i in top if torch.isfinite(gain[i])]


def allowed_tokens(tokenizer, min_len: int = 2, vocab: set[str] | None = None) -> torch.Tensor:
    """Token ids that are whole lower-case alphabetic words re-tokenizing to themselves."""
    items = [(t, i) for t, i in tokenizer.get_vocab().items() if len(t) >= min_len and _ALPHA.match(t)
             and (vocab is None or t in vocab)]
    if not items:
        return torch.zeros(0, dtype=torch.long)
    enc = tokenizer([t for t, _ in items], add_special_tokens=False)["input_ids"]
    ids = sorted(i for (t, i), row in zip(items, enc) if list(row) == [i])
    return torch.as_tensor(ids, dtype=torch.long)


def insertion_point(original: str, position: Any) -> int:
    """The character offset where the trigger goes: before word ``position`` (``start`` = 0,
    ``end`` = after the last word)."""
    spans = [m.start() for m in _WORD_RE.finditer(original)]
    if position == "start":
        return 0
    if position == "end" or (isinstance(position, int) and position >= len(spans)):
        return len(original)
    p = int(position)
    return 0 if p <= 0 or not spans else spans[p]


def insert(original: str, trigger: str, at: int) -> str:
    """``original`` with ``trigger`` inserted at character ``at`` (one space separates it from its
    neighbours; the rest of the text is unchanged)."""
    before, after = original[:at], original[at:]
    left = "" if not before or before[-1].isspace() else " "
    right = "" if not after or after[0].isspace() else " "
    return before + left + trigger + right + after


def check_position(position: Any) -> Any:
    if position in ("start", "end"):
        return position
    if isinstance(position, bool) or not isinstance(position, int) or position < 0:
        raise ConfigError(f"attack.position must be 'start', 'end' or a word index >= 0, got {position!r}")
    return position


class TriggerAttack(Attack):
    """PAT (see the module docstring for the objective and the search).

    Args:
        budget: trigger length in tokens (= words), 1..64.
        position: ``start`` (the paper's placement), ``end`` or a word index.
        beam: beam width; topk: gradient candidates per position and beam member; passes: sweeps
            over the positions.
        anchors: documents ranked highest by the victim that the target must overtake (T-1).
        margin: the hinge margin of (T-1).
        fluency_weight, semantic_weight: weights of (T-2) and (T-3) in (T-4), >= 0.
        lm_lambda: the bigram model's interpolation weight (:class:`BigramLM`).
        vocab: ``collection`` (tokens the language model saw) or ``all`` (the tokenizer's words).
        min_token_len: shortest allowed trigger token, in characters.
        init_token: the token the trigger starts from.
        victim_check: score the final beam with the victim (counted) and keep its best.
        imitation: settings for :func:`rankexp.attacks.imitation.train_imitation` (black box).
        eval_batch: candidates per forward pass.
    """

    name = "pat"

    def __init__(self, budget: int = 6, position: Any = "start", beam: int = 5, topk: int = 10, passes: int = 1,
                 anchors: int = 3, margin: float = 1.0, fluency_weight: float = 0.1, semantic_weight: float = 0.1,
                 lm_lambda: float = 0.7, vocab: str = "collection", min_token_len: int = 2, init_token: str = "the",
                 victim_check: bool = False, imitation: dict[str, Any] | None = None, eval_batch: int = 32):
        if isinstance(budget, bool) or not isinstance(budget, int) or not 1 <= budget <= MAX_BUDGET:
            raise ConfigError(f"attack.budget must be a whole number of trigger tokens in 1..{MAX_BUDGET}, got {budget!r}")
        for key, v in (("beam", beam), ("topk", topk), ("passes", passes), ("anchors", anchors), ("eval_batch", eval_batch),
                       ("min_token_len", min_token_len)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ConfigError(f"attack.{key} must be a whole number >= 1, got {v!r}")
        for key, v in (("fluency_weight", fluency_weight), ("semantic_weight", semantic_weight), ("margin", margin)):
            if float(v) < 0:
                raise ConfigError(f"attack.{key} must be >= 0, got {v!r}")
        if vocab not in ("collection", "all"):
            raise ConfigError(f"attack.vocab must be 'collection' or 'all', got {vocab!r}")
        self.budget, self.position = budget, check_position(position)
        self.beam, self.topk, self.passes, self.anchors, self.margin = beam, topk, passes, anchors, float(margin)
        self.fluency_weight, self.semantic_weight, self.lm_lambda = float(fluency_weight), float(semantic_weight), float(lm_lambda)
        self.vocab, self.min_token_len, self.init_token = vocab, min_token_len, init_token
        from omegaconf import OmegaConf

        if OmegaConf.is_config(imitation):
            imitation = OmegaConf.to_container(imitation, resolve=True)
        self.victim_check, self.imitation, self.eval_batch = bool(victim_check), dict(imitation or {}), eval_batch
        self.encoder = None
        self.lm: BigramLM | None = None
        self.allowed: torch.Tensor | None = None

    # -- setup ---------------------------------------------------------------------------------
    def setup(self, ctx: AttackContext) -> dict[str, Any]:
        from rankexp.utils.progress import track

        facts: dict[str, Any] = {}
        if ctx.white_box and ctx.ranker is not None:
            if getattr(ctx.ranker.encoder, "kind", "cross") != "cross":
                raise ConfigError(f"attack={self.name} white-box needs a cross-encoder victim (this one is a "
                                  f"{getattr(ctx.ranker.encoder, 'kind', '?')}-encoder); set attack.white_box=false to attack "
                                  f"it through the imitation model")
            self.encoder, facts["surrogate"] = ctx.ranker.encoder, "victim (white box)"
        else:
            from rankexp.attacks.imitation import train_imitation

            ranker = train_imitation(ctx, **self.imitation)
            self.encoder, facts["surrogate"] = ranker.encoder, "imitation model"
            facts["imitation"] = getattr(ranker, "facts", None)
        self.encoder.eval()
        docs: dict[str, str] = {}
        for q in track(list(ctx.queries), "trigger: language model documents"):
            for d in ctx.victim.candidates(q):
                if d not in docs:
                    docs[d] = ctx.victim.doc_text(d)
        self.lm = BigramLM(docs.values(), self.lm_lambda)
        self.allowed = allowed_tokens(self.encoder.tokenizer, self.min_token_len, self.lm.vocab if self.vocab == "collection" else None)
        if self.allowed.numel() == 0:
            raise ConfigError(f"attack.vocab={self.vocab}: no allowed trigger token (whole alphabetic words of the "
                              f"tokenizer{' seen in the documents' if self.vocab == 'collection' else ''})")
        facts.update({"lm": f"bigram on {len(docs)} candidate documents (not a causal LM)", "trigger_vocab": int(self.allowed.numel())})
        return facts

    # -- the objective ---------------------------------------------------------------------------
    def _prepare(self, target: Target, ctx: AttackContext, original: str) -> dict[str, Any]:
        from rankexp.attacks.imitation import score_texts, tokenize
        from rankexp.eval.trec_io import sort_ranking

        enc = self.encoder
        at = insertion_point(original, self.position)
        before, after = original[:at], original[at:]
        queries = {}
        for q in target.qids:
            ranked = [d for d, _ in sort_ranking({d: float(s) for d, s in ctx.victim.candidates(q).items()}) if d != target.doc_id]
            anchors = ranked[: self.anchors]
            qt = ctx.victim.query_text(q)
            a_scores = score_texts(enc, [qt] * len(anchors), [ctx.victim.doc_text(a) for a in anchors]) if anchors else []
            queries[q] = {"text": qt, "ids": tokenize(enc, qt), "anchors": anchors, "anchor_scores": torch.tensor(a_scores)}
        prefix = tokenize(enc, before) if before.strip() else []
        room = min(enc.max_length - min(len(i["ids"]), enc.max_query_length) - 3 for i in queries.values()) if queries else enc.max_length
        if len(prefix) + self.budget > room:
            log.warning("attack=%s: the trigger at position %r of %s lies (partly) beyond the model's max_length; "
                        "the truncated part cannot change the score (use position=start)", self.name, self.position, target.doc_id)
        prev_w, next_w = lm_words(before), lm_words(after)
        doc_ids = tokenize(enc, original)[: enc.max_length]
        emb = self._embedding()
        doc_vec = (emb[torch.as_tensor(doc_ids, dtype=torch.long, device=emb.device)].float().mean(0) if doc_ids
                   else torch.zeros(emb.shape[1], device=emb.device))
        return {"at": at, "prefix": prefix, "suffix": tokenize(enc, after) if after.strip() else [],
                "queries": queries, "prev": prev_w[-1] if prev_w else BOS, "next": next_w[0] if next_w else None, "doc_vec": doc_vec}

    def _embedding(self) -> torch.Tensor:
        from rankexp.attacks.imitation import input_embeddings

        return input_embeddings(self.encoder).weight.detach()

    def _rank_term(self, scores: torch.Tensor, anchor_scores: torch.Tensor) -> torch.Tensor:
        """(T-1) for a vector of target scores (one per candidate trigger)."""
        if anchor_scores.numel() == 0:
            return scores  # nothing to overtake: the score itself
        a = anchor_scores.to(scores.device, scores.dtype)
        return -torch.relu(self.margin - scores.unsqueeze(-1) + a.unsqueeze(0)).mean(-1)

    def _tokens(self, trig: Sequence[int]) -> list[str]:
        return self.encoder.tokenizer.convert_ids_to_tokens(list(trig))

    def _fluency(self, trig: Sequence[int], prep: dict[str, Any]) -> float:
        return self.lm.fluency(self._tokens(trig), prep["prev"], prep["next"]) if self.lm is not None else 0.0

    def _semantic(self, trig_vecs: torch.Tensor, prep: dict[str, Any]) -> torch.Tensor:
        return torch.nn.functional.cosine_similarity(trig_vecs.float().mean(-2), prep["doc_vec"].to(trig_vecs.device), dim=-1)

    @torch.no_grad()
    def _evaluate(self, triggers: list[list[int]], prep: dict[str, Any]) -> list[dict[str, Any]]:
        """(T-4) and its parts for candidate triggers (token ids), scored on the surrogate."""
        from rankexp.attacks.imitation import encode_ids, forward

        enc = self.encoder
        per_q = {}
        for q, info in prep["queries"].items():
            scores = []
            for i in range(0, len(triggers), self.eval_batch):
                part = triggers[i : i + self.eval_batch]
                rows = [prep["prefix"] + list(t) + prep["suffix"] for t in part]
                scores.append(forward(enc, encode_ids(enc, [info["ids"]] * len(rows), rows)).float().cpu())
            s = torch.cat(scores)
            per_q[q] = (s, self._rank_term(s, info["anchor_scores"]))
        emb = self._embedding()
        sem = self._semantic(emb[torch.as_tensor(triggers, dtype=torch.long, device=emb.device)], prep).cpu()
        out = []
        for j, t in enumerate(triggers):
            rank = {q: float(r[j]) for q, (_, r) in per_q.items()}
            flu = self._fluency(t, prep)
            out.append({"trigger": list(t), "rank": rank, "rank_objective": self.combine(list(rank.values())),
                        "fluency": flu, "semantic": float(sem[j]), "scores": {q: float(s[j]) for q, (s, _) in per_q.items()}})
            out[-1]["objective"] = out[-1]["rank_objective"] + self.fluency_weight * flu + self.semantic_weight * float(sem[j])
        return out

    def combine(self, values: Sequence[float]) -> float:
        """How the queries' (T-1) terms add up: their sum."""
        return float(sum(values))

    def _gradient(self, trig: list[int], prep: dict[str, Any]) -> torch.Tensor:
        """dJ/de for each trigger token's input embedding ([k, dim]); (T-2) has no gradient."""
        from rankexp.attacks.imitation import encode_ids, forward_embeds, input_embeddings

        enc = self.encoder
        layer = input_embeddings(enc)
        dev = layer.weight.device
        leaf = layer.weight[torch.as_tensor(trig, dtype=torch.long, device=dev)].detach().clone().requires_grad_(True)
        terms = []
        k = len(trig)
        for info in prep["queries"].values():
            batch = encode_ids(enc, [info["ids"]], [prep["prefix"] + list(trig) + prep["suffix"]])
            batch = {n: v.to(dev) for n, v in batch.items()}
            q_len = min(len(info["ids"]), enc.max_query_length)
            start = q_len + 2 + len(prep["prefix"])
            width = batch["input_ids"].shape[1] - 1  # the final [SEP]
            visible = max(0, min(k, width - start))
            embeds = layer(batch["input_ids"]).detach()
            if visible:
                embeds = torch.cat([embeds[:, :start], leaf[:visible].unsqueeze(0).to(embeds.dtype), embeds[:, start + visible :]], 1)
            score = forward_embeds(enc, embeds, batch["attention_mask"], batch["token_type_ids"])
            terms.append(self._rank_term(score.float(), info["anchor_scores"]).sum())
        total = self.combine_tensor(terms) + self.semantic_weight * self._semantic(leaf.unsqueeze(0), prep).sum()
        (grad,) = torch.autograd.grad(total, leaf, allow_unused=True)
        return torch.zeros_like(leaf) if grad is None else grad.detach()

    def combine_tensor(self, terms: list[torch.Tensor]) -> torch.Tensor:
        return torch.stack(terms).sum()

    # -- the search ------------------------------------------------------------------------------
    def search(self, target: Target, ctx: AttackContext, original: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """The final beam (best first) and the prepared objective."""
        from rankexp.utils.progress import track

        if self.encoder is None:
            raise ConfigError("attack.setup() must run before perturb() (no surrogate model)")
        prep = self._prepare(target, ctx, original)
        init = self.encoder.tokenizer.convert_tokens_to_ids(self.init_token)
        if not isinstance(init, int) or init == self.encoder.tokenizer.unk_token_id:
            init = int(self.allowed[0])
        beams = self._evaluate([[init] * self.budget], prep)
        emb = self._embedding()
        allowed = self.allowed.to(emb.device)
        steps = [(p, i) for p in range(self.passes) for i in range(self.budget)]
        for _, i in track(steps, f"trigger search ({target.doc_id})"):
            pool = {tuple(b["trigger"]) for b in beams}
            for b in beams:
                g = self._gradient(b["trigger"], prep)[i]
                for c in hotflip_candidates(g, emb, allowed, self.topk, exclude=[b["trigger"][i]]):
                    t = list(b["trigger"])
                    t[i] = c
                    pool.add(tuple(t))
            current = {tuple(b["trigger"]) for b in beams}
            new = [list(t) for t in sorted(pool - current)]
            scored = beams + (self._evaluate(new, prep) if new else [])
            beams = sorted(scored, key=lambda r: (-r["objective"], r["trigger"]))[: self.beam]
        return beams, prep

    def _final(self, trig: list[int], prep: dict[str, Any], original: str) -> tuple[str, str, dict[str, Any]]:
        """The perturbed text and (T-4) recomputed from it (re-tokenized, re-scored)."""
        from rankexp.attacks.imitation import score_texts

        trigger = " ".join(self._tokens(trig))
        text = insert(original, trigger, prep["at"])
        rank, scores = {}, {}
        for q, info in prep["queries"].items():
            s = score_texts(self.encoder, [info["text"]], [text])[0]
            scores[q] = s
            rank[q] = float(self._rank_term(torch.tensor([s]), info["anchor_scores"])[0])
        emb = self._embedding()
        flu = self._fluency(trig, prep)
        sem = float(self._semantic(emb[torch.as_tensor(trig, dtype=torch.long, device=emb.device)].unsqueeze(0), prep)[0])
        rank_obj = self.combine(list(rank.values()))
        return trigger, text, {"objective": rank_obj + self.fluency_weight * flu + self.semantic_weight * sem,
                               "rank_objective": rank_obj, "per_query": rank, "fluency": flu, "semantic": sem,
                               "surrogate_scores": scores}

    def perturb(self, target: Target, ctx: AttackContext) -> Perturbation:
        original = ctx.victim.doc_text(target.doc_id)
        beams, prep = self.search(target, ctx, original)
        best, used = beams[0], 0
        if self.victim_check and len(beams) > 1:
            texts = [insert(original, " ".join(self._tokens(b["trigger"])), prep["at"]) for b in beams]
            mean_rank = [0.0] * len(beams)
            for q in target.qids:
                used += len(texts)
                for j, s in enumerate(ctx.victim.score_texts(q, texts, count=True)):
                    mean_rank[j] += ctx.victim.rank_with(q, target.doc_id, float(s)) / len(target.qids)
            best = beams[min(range(len(beams)), key=lambda j: (mean_rank[j], -beams[j]["objective"]))]
        trigger, text, parts = self._final(best["trigger"], prep, original)
        details = {"trigger": trigger, "position": self.position, **parts, "anchors": {q: i["anchors"] for q, i in prep["queries"].items()},
                   "fluency_model": "bigram LM on the candidate documents"}
        return Perturbation(text=text, original=original, changed=len(words(trigger)), total_words=len(words(original)),
                            victim_queries=used, details=details)
