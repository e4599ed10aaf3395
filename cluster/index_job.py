"""The indexing job: embed every drawing of a manifest with a trained model and upsert it into a
versioned Milvus collection, on Ray Data.

    manifest rows ──► DrawingEmbedder actors (model loaded once; decode + the shared
                      preprocessing + image tower; the text tower on the drawing's own words)
                  ──► MilvusWriter actors (large upsert batches keyed by drawing_id)
                  ──► flush, HNSW index, load, [alias swap]

Each drawing is stored as one fused vector ``[image ; words]`` (priorsight.vectors), so one
inner-product search scores a query's drawing and words together.

Re-runs and resumed runs never duplicate (upsert by primary key) and skip drawings already in
the target collection. Drawings that cannot be read or decoded are recorded, not fatal.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from priorsight.config import MilvusConfig, StorageConfig
from priorsight.manifest import FAILURE_SCHEMA, read_manifest, write_table
from priorsight.records import ItemError
from priorsight.storage import Storage, join

log = logging.getLogger(__name__)
STAGE = "index"
#: the manifest columns the job reads (the title: the drawing's words, the rest: filter fields)
INDEX_COLUMNS = ("drawing_id", "patent_id", "locarno_class", "us_class", "view", "grant_date", "source",
                 "image_uri", "title")


def model_version_of(checkpoint: str, storage: Storage | None = None) -> str:
    """A short, stable id of the model behind a run dir / checkpoint (its latest checkpoint file)."""
    from training.train import latest_checkpoint

    uri = checkpoint
    if not uri.endswith(".pt"):
        latest = latest_checkpoint(uri, storage or Storage())
        if latest is None:
            from priorsight.storage import NotFound

            raise NotFound(f"no checkpoint under {checkpoint}")
        uri = latest["uri"]
    digest = hashlib.blake2b((storage or Storage()).read_bytes(uri), digest_size=6).hexdigest()
    return f"m-{digest}"


class DocumentTower:
    """The trained towers (:class:`training.encoder.Encoder`), loaded once (per actor / per
    process): drawings and their words to the fused vectors the index holds."""

    def __init__(self, checkpoint: str, storage_config: dict | None = None, threads: int | None = None):
        from training.encoder import Encoder

        self.storage = Storage(StorageConfig.model_validate(storage_config or {}))
        self.encoder = Encoder.from_checkpoint(checkpoint, self.storage, text=True, threads=threads)
        self.preprocessing = self.encoder.preprocessing
        self.image_size = self.preprocessing.size
        self.dim = self.encoder.vector_dim

    def embed(self, images: np.ndarray, texts: list[str] | None = None) -> np.ndarray:
        """(N, 3, S, S) preprocessed drawings and their words -> (N, dim) ``[image ; words]``."""
        return self.encoder.documents(self.encoder.embed_images(images), texts)


def read_and_preprocess(storage: Storage, uris: list[str], preprocessing) -> tuple[list[np.ndarray], list[str | None]]:
    """Decode + preprocess each image (``preprocessing``: the model's
    :class:`~priorsight.images.Preprocessing`); an error message instead of an array where it fails."""
    from priorsight.images import ImageError, Preprocessing

    pre = preprocessing if isinstance(preprocessing, Preprocessing) else Preprocessing(preprocessing)
    arrays, errors = [], []
    for uri in uris:
        try:
            arrays.append(pre.load(storage.read_bytes(uri)))
            errors.append(None)
        except (ImageError, OSError) as exc:  # NotFound/StorageError are OSErrors
            arrays.append(None)
            errors.append(str(exc))
    return arrays, errors


class DrawingEmbedder:
    """Ray Data callable class: loads the model once per actor, embeds a batch of manifest rows."""

    def __init__(self, checkpoint: str, storage_config: dict | None = None, threads: int = 1):
        self.tower = DocumentTower(checkpoint, storage_config, threads)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, Any]:
        from priorsight.vectors import document_text

        uris = [str(u) for u in batch["image_uri"]]
        arrays, errors = read_and_preprocess(self.tower.storage, uris, self.tower.preprocessing)
        ok = [i for i, a in enumerate(arrays) if a is not None]
        emb = np.zeros((len(uris), self.tower.dim), dtype=np.float32)
        if ok:
            titles = batch.get("title")
            texts = None if titles is None else [document_text({"title": titles[i]}) for i in ok]
            emb[ok] = self.tower.embed(np.stack([arrays[i] for i in ok]), texts)
        out = {k: batch[k] for k in INDEX_COLUMNS if k in batch and k != "title"}
        out["embedding"] = emb
        out["error"] = np.array([e or "" for e in errors], dtype=object)
        return out


class MilvusWriter:
    """Ray Data callable class: one Milvus connection per actor, large upsert batches."""

    def __init__(self, milvus_config: dict, collection: str, model_version: str, batch_size: int = 5000):
        from priorsight.milvus import connect

        self.config = MilvusConfig.model_validate(milvus_config)
        self.client = connect(self.config)
        self.collection = collection
        self.model_version = model_version
        self.batch_size = batch_size

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, Any]:
        from priorsight.milvus import upsert_drawings

        errors = [str(e) for e in batch["error"]]
        rows = [_row(batch, i, self.model_version) for i, e in enumerate(errors) if not e]
        if rows:
            upsert_drawings(self.client, self.collection, rows, self.batch_size, timeout=self.config.timeout_s)
        return {"drawing_id": batch["drawing_id"], "patent_id": batch["patent_id"], "image_uri": batch["image_uri"],
                "error": np.array(errors, dtype=object)}


class _DriverWriter(MilvusWriter):
    """The same writer in the driver process, on the driver's own client (Milvus Lite)."""

    def __init__(self, client: Any, collection: str, model_version: str, config: MilvusConfig):
        self.config, self.client, self.collection = config, client, collection
        self.model_version, self.batch_size = model_version, config.upsert_batch


def _row(batch: dict[str, np.ndarray], i: int, model_version: str) -> dict[str, Any]:
    from priorsight.milvus import PRIMARY_FIELD, VECTOR_FIELD, grant_date_int

    def s(name: str) -> str:
        v = batch[name][i]
        return "" if v is None else str(v)

    return {PRIMARY_FIELD: s("drawing_id"), "patent_id": s("patent_id"), "locarno_class": s("locarno_class"),
            "us_class": s("us_class") if "us_class" in batch else "", "view": s("view") or "other", "grant_date": grant_date_int(s("grant_date") or None),
            "source": s("source"), "model_version": model_version, VECTOR_FIELD: batch["embedding"][i].tolist()}


@dataclass
class IndexResult:
    collection: str
    model_version: str
    drawings: int
    skipped_existing: int
    written: int
    failed: int
    seconds: float
    index_seconds: float
    rows_in_collection: int
    alias: str
    live: str | None
    failures_uri: str | None = None
    timings: dict[str, float] = field(default_factory=dict)


def ensure_loaded(client: Any, collection: str, config: MilvusConfig) -> None:
    """Load a collection (indexing it first if needed) so it can be queried: a run killed before
    its end leaves its collection unindexed and unloaded, and a query on it fails."""
    from priorsight.milvus import create_indexes, is_loaded

    if is_loaded(client, collection):
        return
    if not client.list_indexes(collection):
        create_indexes(client, collection, config)
    client.load_collection(collection, timeout=max(config.timeout_s, 600))


def settle_vector_index(client: Any, collection: str, config: MilvusConfig) -> bool:
    """After a run that added rows to an indexed collection (a resumed run was indexed on the
    rows written before its kill; a re-run adds new drawings): rebuild the vector index when the
    collection now calls for another one (``index_type: auto`` past ``scann_min_rows``, or the
    config changed). Not for the collection the alias serves, which would be unsearchable while
    it rebuilds: that one keeps its index, with a warning. Returns whether it rebuilt."""
    from priorsight.milvus import collection_rows, live_collection, rebuild_vector_index, vector_index_matches

    if config.target == "lite":  # AUTOINDEX
        return False
    rows = collection_rows(client, collection)
    if vector_index_matches(client, collection, config, rows):
        return False
    if live_collection(client, config.alias) == collection:
        log.warning("%s serves the alias %s: it keeps its vector index, though its %d rows now call for "
                    "another (docs/deploy.md); index into a new collection (--collection NAME --swap) to change it",
                    collection, config.alias, rows)
        return False
    rebuild_vector_index(client, collection, config)
    return True


def existing_ids(client: Any, collection: str, batch: int = 10_000) -> set[str]:
    """Drawing ids already in a collection (for resuming; the collection must be loaded)."""
    from priorsight.milvus import PRIMARY_FIELD

    ids: set[str] = set()
    it = client.query_iterator(collection, batch_size=batch, filter="", output_fields=[PRIMARY_FIELD])
    try:
        while True:
            page = it.next()
            if not page:
                break
            ids.update(str(r[PRIMARY_FIELD]) for r in page)
    finally:
        it.close()
    return ids


def built_for(client: Any, collection: str, description: str = "") -> str | None:
    """The model version a collection was built for: from its description (servers), else from
    a row (Milvus Lite keeps no collection description)."""
    try:
        version = json.loads(description or "{}").get("model_version")
    except ValueError:
        version = None
    if version:
        return version
    rows = client.query(collection, filter="", output_fields=["model_version"], limit=1)
    return rows[0]["model_version"] if rows else None


def target_collection(client: Any, config: MilvusConfig, model_version: str, dim: int,
                      collection: str | None = None) -> tuple[str, bool]:
    """The collection to fill: ``collection`` if named, else the version built for this model
    (resume), else a new version beside the live one. Returns (name, created)."""
    from priorsight.milvus import create_drawing_collection, list_versions, next_version_name

    if collection:
        if client.has_collection(collection):
            return collection, False
        create_drawing_collection(client, collection, dim, config, model_version, build_index=False)
        return collection, True
    for v in list_versions(client, config.alias):
        if built_for(client, v.name, v.description) == model_version:
            return v.name, False
    name = next_version_name(client, config.alias)
    create_drawing_collection(client, name, dim, config, model_version, build_index=False)
    return name, True


def _index_table(corpus: str, storage: Storage) -> pa.Table:
    """The manifest columns the job needs (a manifest written before ``us_class`` existed gets
    an empty one)."""
    table = read_manifest(corpus, storage)
    if "us_class" not in table.column_names:
        table = table.append_column("us_class", pa.nulls(table.num_rows, pa.string()))
    return table.select(list(INDEX_COLUMNS))


def index_corpus(corpus: str, checkpoint: str, milvus: MilvusConfig, storage_config: StorageConfig | None = None,
                 collection: str | None = None, swap: bool = False, embed_actors: int = 1,
                 writer_actors: int = 1, batch_size: int = 32, address: str | None = None,
                 progress: bool = True, limit: int | None = None) -> IndexResult:
    """Embed ``corpus`` with ``checkpoint`` into Milvus (see the module docstring)."""
    import ray
    from tqdm import tqdm

    from cluster.ray_env import init_ray
    from priorsight.milvus import connect, create_indexes, live_collection, swap_alias

    t0 = time.perf_counter()
    storage_config = storage_config or StorageConfig()
    storage = Storage(storage_config)
    model_version = model_version_of(checkpoint, storage)
    from training.encoder import checkpoint_vector_dim
    from training.train import checkpoint_uri, load_checkpoint

    dim = checkpoint_vector_dim(load_checkpoint(checkpoint_uri(checkpoint, storage), storage))
    client = connect(milvus)
    # DDL on a server that has just started (or is busy) can take long: give it room
    ddl = milvus.model_copy(update={"timeout_s": max(milvus.timeout_s, 180.0)})
    name, created = target_collection(client, ddl, model_version, dim, collection)
    table = _index_table(corpus, storage)
    if limit is not None:
        table = table.slice(0, limit)
    total = table.num_rows
    if not created:  # resuming (perhaps after a killed run): see which drawings are there already
        ensure_loaded(client, name, ddl)
    done = set() if created else existing_ids(client, name)
    if done:
        keep = pa.array([d not in done for d in table.column("drawing_id").to_pylist()])
        table = table.filter(keep)
    log.info("indexing %d drawings into %s (%d already there, model %s)", table.num_rows, name, len(done),
             model_version)
    failures: list[dict] = []
    written = 0
    if table.num_rows:
        cfg_dict = storage_config.model_dump(mode="json")
        # secrets are SecretStr: pass their values to the actors explicitly
        for key in ("access_key_id", "secret_access_key", "session_token"):
            v = getattr(storage_config, key)
            cfg_dict[key] = v.get_secret_value() if v is not None else None
        mdict = milvus.model_dump(mode="json")
        mdict["token"] = milvus.token.get_secret_value() if milvus.token is not None else None
        with init_ray(address):
            ds = ray.data.from_arrow(table).repartition(max(1, table.num_rows // 256))
            ds = ds.map_batches(DrawingEmbedder, fn_constructor_kwargs={"checkpoint": checkpoint,
                                                                        "storage_config": cfg_dict},
                                batch_size=batch_size, num_cpus=0.5,
                                compute=ray.data.ActorPoolStrategy(size=embed_actors))
            if milvus.target == "lite":  # one process per Lite file: the driver writes
                writer = _DriverWriter(client, name, model_version, milvus)
                ds = ds.map_batches(lambda b: b, batch_size=2_000)
            else:
                writer = None
                ds = ds.map_batches(MilvusWriter, fn_constructor_kwargs={"milvus_config": mdict, "collection": name,
                                                                         "model_version": model_version,
                                                                         "batch_size": milvus.upsert_batch},
                                    batch_size=2_000, num_cpus=0.25,
                                    compute=ray.data.ActorPoolStrategy(size=writer_actors))
            with tqdm(total=table.num_rows, desc="index", unit=" drawings", disable=not progress,
                      mininterval=1) as bar:
                for out in ds.iter_batches(batch_size=None, batch_format="numpy"):
                    if writer is not None:
                        out = writer(out)
                    for d, p, u, e in zip(out["drawing_id"], out["patent_id"], out["image_uri"], out["error"],
                                          strict=True):
                        if e:
                            failures.append(ItemError(str(u), STAGE, str(e), drawing_id=str(d),
                                                      patent_id=str(p)).to_row())
                        else:
                            written += 1
                    bar.update(len(out["drawing_id"]))
    t_index = time.perf_counter()
    client.flush(name)
    if not client.list_indexes(name):
        create_indexes(client, name, milvus)
    else:
        settle_vector_index(client, name, milvus)
    client.load_collection(name, timeout=max(milvus.timeout_s, 600))
    index_s = time.perf_counter() - t_index
    rows = int(client.get_collection_stats(name).get("row_count", 0))
    failures_uri = None
    if failures:
        base = corpus[: -len(".parquet")] if corpus.endswith(".parquet") else corpus
        failures_uri = (base + ".index-failures.parquet") if corpus.endswith(".parquet") else join(
            base, f"index-failures-{name}.parquet")
        write_table(pa.Table.from_pylist(failures, schema=FAILURE_SCHEMA), failures_uri, storage)
    live = live_collection(client, milvus.alias)
    if swap or live is None:
        swap_alias(client, milvus.alias, name)
        live = name
    return IndexResult(collection=name, model_version=model_version, drawings=total, skipped_existing=len(done),
                       written=written, failed=len(failures), seconds=time.perf_counter() - t0,
                       index_seconds=index_s, rows_in_collection=rows, alias=milvus.alias, live=live,
                       failures_uri=failures_uri)


# -- benchmark: the Ray Data embedding stage versus a plain loop ---------------------------------

def _plain_loop(table: pa.Table, checkpoint: str, batch_size: int, threads: int) -> tuple[int, float | None]:
    """Drawings embedded, and when the first batch came out (perf_counter)."""
    embedder = DrawingEmbedder(checkpoint, threads=threads)
    n, first = 0, None
    for start in range(0, table.num_rows, batch_size):
        chunk = table.slice(start, batch_size).to_pydict()
        out = embedder({k: np.asarray(v, dtype=object) for k, v in chunk.items()})
        n += len(out["drawing_id"])
        first = first or time.perf_counter()
    return n, first


class _TimedEmbedder(DrawingEmbedder):
    """DrawingEmbedder that stamps each output batch with the wall-clock time it was done."""

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, Any]:
        out = super().__call__(batch)
        out["done_at"] = np.full(len(out["drawing_id"]), time.time())
        return out


def _steady_rate(runs: list[dict[str, Any]], kind: str) -> float:
    """Drawings/s after each run's first batch (start-up -- a worker process, imports, model
    loading -- excluded: it is paid once per job, whatever the corpus size)."""
    done = sum(x["drawings"] - x["first_batch_drawings"] for x in runs if x["run"] == kind)
    secs = sum(x["seconds"] - x["first_batch_s"] for x in runs if x["run"] == kind)
    return done / max(secs, 1e-9)


def bench_embed(corpus: str, checkpoint: str, drawings: int = 512, batch_size: int = 32, repeats: int = 2,
                actors: int = 1, threads: int = 2) -> dict[str, Any]:
    """Drawings/s of the indexing job's embedding stage on Ray Data (actors that load the model
    once) versus the same callable in a plain loop in this process (the limit); alternating
    runs, model loading included in both, Ray start-up not."""
    import ray

    from cluster.ray_env import init_ray

    table = _index_table(corpus, Storage()).slice(0, drawings)
    runs: list[dict[str, Any]] = []
    with init_ray() as handle:
        cpus = handle.cpus
        for r in range(repeats):
            t = time.perf_counter()
            n, first = _plain_loop(table, checkpoint, batch_size, threads)
            runs.append({"run": "loop", "repeat": r, "drawings": n, "seconds": time.perf_counter() - t,
                         "first_batch_s": (first or t) - t, "first_batch_drawings": min(batch_size, n)})
            t = time.perf_counter()
            wall = time.time()
            ds = ray.data.from_arrow(table).map_batches(
                _TimedEmbedder, fn_constructor_kwargs={"checkpoint": checkpoint, "threads": threads},
                batch_size=batch_size, num_cpus=min(float(threads), cpus / max(actors, 1)) - 0.25,
                compute=ray.data.ActorPoolStrategy(size=actors))
            # output blocks coalesce batches, so the first batch's time comes from the actor's stamp
            stamps = np.concatenate([b["done_at"] for b in ds.iter_batches(batch_size=None, batch_format="numpy")])
            seconds = time.perf_counter() - t
            runs.append({"run": "ray", "repeat": r, "drawings": len(stamps), "seconds": seconds,
                         "first_batch_s": float(stamps.min() - wall) if len(stamps) else seconds,
                         "first_batch_drawings": int((stamps == stamps.min()).sum()) if len(stamps) else 0})
    total = {k: sum(x["seconds"] for x in runs if x["run"] == k) for k in ("loop", "ray")}
    done = {k: sum(x["drawings"] for x in runs if x["run"] == k) for k in ("loop", "ray")}
    rate = {k: done[k] / total[k] for k in total}
    steady = {k: _steady_rate(runs, k) for k in total}
    return {"corpus": corpus, "checkpoint": checkpoint, "drawings": table.num_rows, "batch_size": batch_size,
            "actors": actors, "threads": threads, "runs": runs, "loop_drawings_per_s": rate["loop"],
            "ray_drawings_per_s": rate["ray"], "ratio_with_startup": rate["ray"] / rate["loop"],
            "loop_steady_drawings_per_s": steady["loop"], "ray_steady_drawings_per_s": steady["ray"],
            "ratio": steady["ray"] / steady["loop"]}
