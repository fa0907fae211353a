"""Lightning data module: fixed training groups and length-sorted rerank pairs for dev."""

from __future__ import annotations

from typing import Mapping, Sequence

import pytorch_lightning as pl
from torch.utils.data import DataLoader, Dataset, DistributedSampler

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


class ResumeSampler(DistributedSampler):
    """This rank's share of the groups, in order, from the first group it has not seen yet, while
    reporting the share's full length.

    The groups are one fixed sequence (shuffled by the run's seed) of ``max_steps · batch_size ·
    accumulate · world_size`` groups; rank r of W takes groups r, r+W, r+2W, … (the first
    ``length // W`` of them, so every rank runs the same number of steps). On resume Lightning
    restores its batch counters from the checkpoint but iterates the loader from the beginning,
    feeding the already-seen groups again: ``start`` (groups all ranks have consumed together)
    makes each rank begin at its first unseen group, so a resumed run sees exactly the groups an
    uninterrupted one would have. Being a ``DistributedSampler`` already, Lightning does not wrap it
    (its wrapper lists a sampler's indices and expects ``len()`` of them, which a resumed sampler
    does not yield).
    """

    def __init__(self, length: int, start: int = 0, num_replicas: int = 1, rank: int = 0):
        # no super().__init__(): it asks torch.distributed, which need not be initialised yet
        self.length, self.num_replicas, self.rank = length, max(1, num_replicas), rank
        self.indices = list(range(rank, length - length % self.num_replicas, self.num_replicas))
        self.start = max(0, min(start // self.num_replicas, len(self.indices)))
        self.num_samples, self.total_size = len(self.indices), len(self.indices) * self.num_replicas
        self.epoch, self.shuffle, self.seed, self.drop_last = 0, False, 0, True

    def __len__(self) -> int:
        return len(self.indices)

    def __iter__(self):
        return iter(self.indices[self.start:])


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
        # (accumulate counts every rank's batches: the groups all ranks consumed together)
        trainer = self.trainer
        done = trainer.global_step * self.batch_size * self.accumulate if trainer is not None else 0
        world, rank = (trainer.world_size, trainer.global_rank) if trainer is not None else (1, 0)
        return DataLoader(GroupDataset(self.groups), batch_size=self.batch_size, sampler=ResumeSampler(len(self.groups), done, world, rank),
                          collate_fn=GroupCollator(self.encoder, self.score_runs))

    def val_dataloader(self):
        if not self.dev_pairs:
            return []
        return pair_loader(self.dev_pairs, self.encoder, self.eval_batch_size)
