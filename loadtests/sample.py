"""A served sample with a held-out split, for load tests on a machine without a trained model.

Under ``root`` (each step done once, reused by later runs)::

    corpus/            generated line drawings (services.sample.write_sample_corpus)
    splits/train|test  held out by patent (priorsight.corpus.split.split_corpus)
    model/sample.pt    the demo-small architecture, untrained heads (services.sample)
    milvus/            embedded Milvus: only the *train* split is indexed
    queries/           the query set, from the *test* split (loadtests.queries)

The sample repeats its 8 shapes every 8 patents, so every held-out design has related prior art
in the index.
"""

from __future__ import annotations

import logging
from pathlib import Path

from priorsight.config import MilvusConfig, SearchSourceConfig, ServeConfig

log = logging.getLogger(__name__)


def loadtest_sample(
    config: ServeConfig,
    root: Path | str,
    n_patents: int = 32,
    views: int = 3,
    test_fraction: float = 0.25,
    seed: int = 0,
    milvus: MilvusConfig | None = None,
) -> tuple[ServeConfig, Path]:
    """``config`` pointed at the sample under ``root`` (built if missing; its embedded Milvus
    started) and the query-set folder. ``milvus``: the embedded server's settings (default: under
    ``root/milvus``)."""
    from loadtests.queries import QUERIES_FILE, build_query_set
    from priorsight.corpus.split import split_corpus
    from services.sample import ensure_indexed, write_random_checkpoint, write_sample_corpus

    root = Path(root).resolve()
    milvus = milvus or MilvusConfig(target="embedded", data_dir=root / "milvus", alias="drawings")
    corpus, splits, ckpt, queries = root / "corpus", root / "splits", root / "model" / "sample.pt", root / "queries"
    train, test = splits / "train", splits / "test"
    if not (corpus / "manifest.parquet").exists():
        write_sample_corpus(corpus, n_patents=n_patents, views=views)
    if not (test / "manifest.parquet").exists():
        counts = split_corpus(str(corpus), str(splits), test_fraction, seed)
        log.info("sample split: %s", counts)
    if not ckpt.exists():
        write_random_checkpoint(ckpt)
    ensure_indexed(str(train), str(ckpt), milvus)
    if not (queries / QUERIES_FILE).exists():
        log.info("query set: %s", build_query_set(str(test), queries, catalog=str(train), seed=seed))
    served = config.model_copy(
        update={
            "checkpoint": str(ckpt),
            "manifest": str(train),
            "start_embedded_milvus": True,
            "sources": [SearchSourceConfig(name="sample", milvus=milvus, collection=milvus.alias)],
        }
    )
    return served, queries
