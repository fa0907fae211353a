"""Lightning data module: fixed training groups and length-sorted rerank pairs for dev."""

from __future__ import annotations

from typing import Mapping, Sequence

import pytorch_lightning as pl
from torch.utils.data import DataLoader, Dataset, Sampler

from rankexp.data.examples import Group
from rankexp.data.tokens import BiPairEncoder, PairEncoder
from rankexp.models.batch import Batch, Run, scores_for


class GroupDataset(Dataset):
    def __init__(self, groups: Sequence[Group]):
        self.groups = list(groups)

    def __len__(self) -> int:
        return len(self.groups)

    def __getitem__(self, i: int) -> Group:
        return self.groups[i]


class PairDataset(Dataset):
    """(qid, doc_id) pairs sorted by pair length, so each batch pads little."""

    def __init__(self, pairs: Sequence[tuple[str, str]], encoder: PairEncoder):
        self.pairs = sorted(pairs, key=lambda p: encoder.pair_length(*p))

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, i: int) -> tuple[str, str]:
        return self.pairs[i]


class ResumeSampler(Sampler):
    """Sequential indices starting at ``start`` while reporting the full length.

    On resume Lightning restores its batch counters from the checkpoint but iterates a plain
    loader from the beginning, feeding the already-seen groups again. Starting the sampler at the
    first unseen group (and keeping the epoch's length) makes a resumed run see exactly the groups
    an uninterrupted run would have.
    """

    def __init__(self, length: int, start: int = 0):
        self.length, self.start = length, max(0, min(start, length))

    def __len__(self) -> int:
        return self.length

    def __iter__(self):
        return iter(range(self.start, self.length))


class GroupCollator:
    """Training groups -> one :class:`~rankexp.models.batch.Batch`: ids, labels, the tokenized
    inputs (cross-encoder pairs, or a bi-encoder's queries and documents apart) and, for each score
    field in ``score_runs`` (``{"first_stage_scores": run, ...}``, what the techniques require), the
    run's scores of the groups' documents."""

    def __init__(self, encoder: PairEncoder | BiPairEncoder, score_runs: Mapping[str, Run] | None = None):
        self.encoder = encoder
        self.score_runs = dict(score_runs or {})

    def __call__(self, groups: list[Group]) -> Batch:
        qids = [g.qid for g in groups]
        doc_ids = [list(g.doc_ids) for g in groups]
        flat_d = [d for g in groups for d in g.doc_ids]
        scores = {name: scores_for(run, qids, doc_ids) for name, run in self.score_runs.items()}
        if hasattr(self.encoder, "encode_groups"):  # bi-encoder: each query once, documents apart
            tok = self.encoder.encode_groups(qids, flat_d)
            return Batch.of_groups(qids, doc_ids, queries=tok["queries"], docs=tok["docs"], **scores)
        flat_q = [g.qid for g in groups for _ in g.doc_ids]
        return Batch.of_groups(qids, doc_ids, inputs=self.encoder.encode(flat_q, flat_d), **scores)


class PairCollator:
    def __init__(self, encoder: PairEncoder | BiPairEncoder):
        self.encoder = encoder

    def __call__(self, pairs: list[tuple[str, str]]) -> dict:
        qids = [p[0] for p in pairs]
        dids = [p[1] for p in pairs]
        return {"inputs": self.encoder.encode(qids, dids), "qids": qids, "dids": dids}


def pair_loader(pairs: Sequence[tuple[str, str]], encoder: PairEncoder, batch_size: int) -> DataLoader:
    return DataLoader(PairDataset(pairs, encoder), batch_size=batch_size, shuffle=False, collate_fn=PairCollator(encoder))


class RankingDataModule(pl.LightningDataModule):
    def __init__(self, groups: Sequence[Group], dev_pairs: Sequence[tuple[str, str]], encoder: PairEncoder,
                 batch_size: int, eval_batch_size: int, accumulate: int = 1,
                 sources: Mapping[str, Run | None] | None = None):
        super().__init__()
        self.groups, self.dev_pairs, self.encoder = groups, dev_pairs, encoder
        self.batch_size, self.eval_batch_size, self.accumulate = batch_size, eval_batch_size, accumulate
        # runs that can fill a batch's score fields (first_stage_scores, teacher_scores); the ones the
        # module's techniques require are read in setup
        self.sources = dict(sources or {})
        self.score_runs: dict[str, Run] = {}

    def setup(self, stage: str | None = None) -> None:
        module = self.trainer.lightning_module if self.trainer is not None else None
        if module is not None and hasattr(module, "check_inputs"):
            self.score_runs = module.check_inputs(self.sources)

    def train_dataloader(self) -> DataLoader:
        # groups are already shuffled by the run's seed; on resume, start after the groups already seen
        done = self.trainer.global_step * self.batch_size * self.accumulate if self.trainer is not None else 0
        return DataLoader(GroupDataset(self.groups), batch_size=self.batch_size, sampler=ResumeSampler(len(self.groups), done),
                          collate_fn=GroupCollator(self.encoder, self.score_runs))

    def val_dataloader(self):
        if not self.dev_pairs:
            return []
        return pair_loader(self.dev_pairs, self.encoder, self.eval_batch_size)
