"""What goes into a training batch: class-aware batches of drawings, and one description per
drawing per step.

:class:`ClassAwareBatchSampler` builds each *global* batch from ``batch_size / m_per_class``
Locarno classes (drawn with probability proportional to ``n_c ** class_power``: 0 = every class
equally often, so tail classes appear; 1 = as often as their drawings), ``m_per_class`` drawings
per class taken as ``views_per_patent`` views of each chosen patent, so instance-level positives
(other views of the same patent) always exist; a patent with too few drawings repeats one, to be
augmented differently. Batches depend only on ``(seed, epoch)``; a DDP rank takes the contiguous
slice ``rank`` of each global batch, so the global batch (and the loss computed on it with
gathering) is the same for any number of workers.

:class:`DescriptionBank` holds the LLM description table (``drawing_id``, ``descriptions``) as
one flat list of texts, so their sentence features can be computed once, and picks one
description per drawing per step, deterministically from ``(seed, epoch, step, drawing)``.
"""

from __future__ import annotations

import logging
from collections.abc import Hashable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
from torch.utils.data import Sampler

log = logging.getLogger(__name__)


def encode_labels(values: Sequence[Hashable]) -> tuple[np.ndarray, list]:
    """Integer codes (0..K-1, in sorted order of the distinct values) and the vocabulary.

    Compute them over the whole dataset so that every rank agrees on the codes."""
    vocab = sorted(set(values), key=lambda v: (v is None, str(v)))
    index = {v: i for i, v in enumerate(vocab)}
    return np.fromiter((index[v] for v in values), dtype=np.int64, count=len(values)), vocab


@dataclass(frozen=True)
class BatchConfig:
    batch_size: int = 64  # global, over all ranks
    m_per_class: int = 4
    views_per_patent: int = 2
    class_power: float = 0.5  # class drawn with p ~ n_c ** class_power (0 uniform, 0.5 sqrt, 1 natural)
    batches_per_epoch: int | None = None  # default: drawings / batch_size
    seed: int = 0

    def __post_init__(self) -> None:
        if self.batch_size < 1 or self.m_per_class < 1 or self.views_per_patent < 1:
            raise ValueError("batch_size, m_per_class and views_per_patent must be >= 1")
        if self.batch_size % self.m_per_class:
            raise ValueError(f"m_per_class={self.m_per_class} must divide batch_size={self.batch_size}")
        if self.m_per_class % self.views_per_patent:
            raise ValueError(f"views_per_patent={self.views_per_patent} must divide m_per_class={self.m_per_class}")


class ClassAwareBatchSampler(Sampler[list[int]]):
    """Yields this rank's slice of each class-aware global batch (lists of dataset indices)."""

    def __init__(self, class_labels: Sequence[Hashable], patent_ids: Sequence[Hashable],
                 config: BatchConfig = BatchConfig(), num_replicas: int = 1, rank: int = 0):
        if len(class_labels) != len(patent_ids) or not len(class_labels):
            raise ValueError("class_labels and patent_ids must be non-empty and of equal length")
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank {rank} outside 0..{num_replicas - 1}")
        if config.batch_size % num_replicas:
            raise ValueError(f"global batch_size={config.batch_size} must be divisible by {num_replicas} replicas")
        self.config = config
        self.num_replicas = num_replicas
        self.rank = rank
        self.epoch = 0
        classes, self.class_vocab = encode_labels(class_labels)
        # class -> patents -> drawing indices, in a fixed (sorted) order
        by_class: dict[int, dict[str, list[int]]] = {}
        for i, (c, p) in enumerate(zip(classes.tolist(), patent_ids, strict=True)):
            by_class.setdefault(c, {}).setdefault(str(p), []).append(i)
        self._patents = [[np.asarray(v) for _, v in sorted(by_class[c].items())] for c in range(len(self.class_vocab))]
        self.class_sizes = np.asarray([sum(len(v) for v in ps) for ps in self._patents])
        weights = self.class_sizes.astype(np.float64) ** config.class_power
        self.class_probs = weights / weights.sum()
        self.num_batches = config.batches_per_epoch or max(1, len(class_labels) // config.batch_size)

    def expected_class_counts(self) -> np.ndarray:
        """Drawings of each class one epoch shows, approximately (classes of one batch are drawn
        without replacement, which flattens the distribution slightly): the training label prior."""
        return self.class_probs * self.num_batches * self.config.batch_size

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.num_batches

    def _class_slot(self, rng: np.random.Generator, c: int) -> list[int]:
        cfg = self.config
        patents = self._patents[c]
        n_patents = cfg.m_per_class // cfg.views_per_patent
        chosen = rng.choice(len(patents), n_patents, replace=len(patents) < n_patents)
        out: list[int] = []
        for p in chosen:
            views = patents[p]
            out.extend(rng.choice(views, cfg.views_per_patent, replace=len(views) < cfg.views_per_patent).tolist())
        return out

    def global_batches(self, epoch: int) -> list[list[int]]:
        """All global batches of an epoch (independent of the replica count)."""
        cfg = self.config
        rng = np.random.default_rng([cfg.seed, epoch])
        k = cfg.batch_size // cfg.m_per_class
        n_classes = len(self._patents)
        batches = []
        for _ in range(self.num_batches):
            classes = rng.choice(n_classes, k, replace=n_classes < k, p=self.class_probs)
            batches.append([i for c in classes for i in self._class_slot(rng, int(c))])
        return batches

    def __iter__(self) -> Iterator[list[int]]:
        b = self.config.batch_size // self.num_replicas
        for batch in self.global_batches(self.epoch):
            yield batch[self.rank * b:(self.rank + 1) * b]


# -- descriptions ------------------------------------------------------------------------------

def _splitmix64(x: np.ndarray) -> np.ndarray:
    """A fast, well-mixed 64-bit hash (vectorised) for per-item deterministic choices."""
    with np.errstate(over="ignore"):
        z = x.astype(np.uint64) + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


class DescriptionBank:
    """Descriptions of drawings as one flat list of texts (``texts``); ``offsets[r]:offsets[r+1]``
    are the descriptions of drawing row ``r``. The first description of each drawing is the
    metadata-only one."""

    def __init__(self, drawing_ids: Sequence[str], descriptions: Sequence[Sequence[str]]):
        if len(drawing_ids) != len(descriptions):
            raise ValueError("drawing_ids and descriptions differ in length")
        self.row_of = {d: r for r, d in enumerate(drawing_ids)}
        if len(self.row_of) != len(drawing_ids):
            raise ValueError("duplicate drawing_id in the description table")
        counts = np.asarray([len(d or ()) for d in descriptions], dtype=np.int64)
        if (counts == 0).any():
            missing = [drawing_ids[i] for i in np.flatnonzero(counts == 0)[:5]]
            raise ValueError(f"drawings without any description, e.g. {missing}")
        self.offsets = np.concatenate([[0], np.cumsum(counts)])
        self.texts: list[str] = [t for d in descriptions for t in d]

    @classmethod
    def from_table(cls, table: pa.Table) -> DescriptionBank:
        for col in ("drawing_id", "descriptions"):
            if col not in table.column_names:
                raise ValueError(f"description table lacks column {col!r} (has {table.column_names})")
        return cls(table.column("drawing_id").to_pylist(), table.column("descriptions").to_pylist())

    @classmethod
    def read(cls, uri: str, storage=None) -> DescriptionBank:
        """Read the describe stage's Parquet table from a local path or ``s3://`` URI."""
        from priorsight.manifest import read_table

        return cls.from_table(read_table(uri, storage, columns=["drawing_id", "descriptions"]))

    def __len__(self) -> int:
        return len(self.row_of)

    def rows(self, drawing_ids: Sequence[str]) -> np.ndarray:
        try:
            return np.fromiter((self.row_of[d] for d in drawing_ids), dtype=np.int64, count=len(drawing_ids))
        except KeyError as exc:
            raise KeyError(f"drawing {exc.args[0]!r} has no descriptions in the table") from None

    def choose(self, drawing_ids: Sequence[str], seed: int, epoch: int, step: int,
               first_p: float | None = None) -> np.ndarray:
        """Flat indices into ``texts``: one description per drawing for this step.

        Uniform over a drawing's descriptions, or with ``first_p`` the metadata-only first one
        with that probability and the LLM ones uniformly otherwise. The choice depends only on
        ``(seed, epoch, step, drawing)``, not on the batch order or the rank."""
        rows = self.rows(drawing_ids)
        start, n = self.offsets[rows], self.offsets[rows + 1] - self.offsets[rows]
        key = (np.uint64(seed) * np.uint64(1_000_003) + np.uint64(epoch)) * np.uint64(1_000_033) + np.uint64(step)
        h = _splitmix64(_splitmix64(np.full(len(rows), key, dtype=np.uint64)) ^ rows.astype(np.uint64))
        u = (h >> np.uint64(11)).astype(np.float64) / float(1 << 53)  # uniform in [0, 1)
        if first_p is None:
            pick = np.minimum((u * n).astype(np.int64), n - 1)
        else:
            if not 0 <= first_p <= 1:
                raise ValueError(f"first_p must be a probability, got {first_p}")
            rest = np.maximum(n - 1, 1)
            v = np.clip((u - first_p) / max(1 - first_p, 1e-12), 0, 1 - 1e-12)
            pick = np.where((u < first_p) | (n == 1), 0, 1 + np.minimum((v * rest).astype(np.int64), rest - 1))
        return start + pick

    def sample_texts(self, drawing_ids: Sequence[str], seed: int, epoch: int, step: int,
                     first_p: float | None = None) -> list[str]:
        return [self.texts[i] for i in self.choose(drawing_ids, seed, epoch, step, first_p)]


def class_counts(codes: np.ndarray, num_classes: int | None = None) -> list[int]:
    """Drawings per class code (for class-balanced weights and logit adjustment)."""
    return np.bincount(np.asarray(codes, dtype=np.int64), minlength=num_classes or 0).tolist()


__all__ = ["BatchConfig", "ClassAwareBatchSampler", "DescriptionBank", "class_counts", "encode_labels"]
