"""Score and index jobs on a Ray cluster, through Ray Data, with the single-process jobs' outputs.

Installed by the `[ray]` extra. Two layers:

- `ScoreBatches` and `EncodeShards` are callable classes for `ray.data.Dataset.map_batches`: each
  actor loads the model once, then scores (or encodes) the batches it is given. `read_documents_dataset`,
  `score_dataset` and `write_parquet` put them together for a Python user with a Dataset of their own.
- `score_job` and `build_index` are what `spicy-lentil score|index --engine ray` run. The driver reads
  the input once with the single-process jobs' code (the same rejects, line numbers and `--resume`
  skips), hands the pending documents to Ray Data window by window, and writes every row that comes
  back through the single-process job's sinks (`jobs.score_job`, `builder.build_index`). This process
  is the only writer, which is what keeps a job exactly once: a killed actor's batch is retried by Ray
  and written only when it comes back whole; a killed driver leaves its output as a killed
  single-process job does, and the rerun with `--resume` repairs it and skips what is there.

The driver puts the pending documents into Ray's object store block by block as it reads them
(past its memory the store spills to disk), then runs them through one Ray Data execution with one
actor pool: each actor loads the model once. Inputs larger than a window (`WINDOW_DOCUMENTS`) run as
one execution per window, which bounds the store.
"""

from __future__ import annotations

import io
import itertools
import json
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable, Iterator

import numpy as np
import pyarrow as pa

from ..corpus.token_codec import CodecSpec
from ..errors import SpicyLentilError, check_query
from ..io import Rejects

if TYPE_CHECKING:
    import ray.data

    from ..corpus.index import CorpusIndex

WINDOW_DOCUMENTS = 1_000_000  # documents per Ray Data execution (and actor pool): what the object store holds
BLOCK_DOCUMENTS = 128  # documents per block: the unit of work an actor takes (and Ray retries)
DOCUMENT_SCHEMA = pa.schema(
    [("_id", pa.string()), ("text", pa.string()), ("title", pa.string()), ("sentences", pa.list_(pa.string()))]
)
SHARD_SCHEMA = pa.schema([("name", pa.string()), ("docs", pa.string()), ("count", pa.int64())])
SLOTS_TYPE = pa.list_(
    pa.struct([("text", pa.string()), ("start", pa.int64()), ("end", pa.int64()), ("score", pa.float64())])
)


def _load_model(model: str | None, pathways_per_query: int, threads: int):
    from ..runtime import configure
    from .engine import SpicyLentil

    configure(threads=threads)  # an actor owns the cores Ray gave it, as `spicy-lentil` owns the machine
    lentil = SpicyLentil.from_pretrained(model)
    lentil.pathways_per_query = pathways_per_query
    return lentil


class ScoreBatches:
    """`map_batches` callable: scores rows `{"_id", "text", "title"?, "sentences"?, "query"?}` with a model loaded
    once per actor; a row's `sentences` (null: none) are its slots, as everywhere else.

    Args:
        model: model folder, as `SpicyLentil.from_pretrained` takes it (None: the bundled model). It
            must be readable on every node.
        query: the query of every row; None reads each row's own `query` column.
        batch_size: documents per model batch.
        pathways_per_query: the gate's top-k.
        threads: cores this actor uses; give the actor as many CPUs (`num_cpus`).
    """

    def __init__(
        self,
        model: str | None = None,
        query: str | None = None,
        batch_size: int = 32,
        pathways_per_query: int = 4,
        threads: int = 1,
    ) -> None:
        if query is not None:
            check_query(query)
        self.lentil = _load_model(model, pathways_per_query, threads)
        self.query = query
        self.batch_size = batch_size

    def __call__(self, batch: pa.Table) -> pa.Table:
        """Scores one batch (`batch_format="pyarrow"`).

        Returns:
            The columns of `spicy-lentil score`'s output, in the batch's row order: `_id`, `score`,
            `active`, `truncated` and `slots` (text, start, end, score of each), plus `query` when
            the rows carry their own.
        """
        columns = batch.column_names
        ids = [str(i) for i in batch.column("_id").to_pylist()]
        texts = batch.column("text").to_pylist()
        titles = batch.column("title").to_pylist() if "title" in columns else [None] * len(ids)
        sentences = batch.column("sentences").to_pylist() if "sentences" in columns else [None] * len(ids)
        queries = batch.column("query").to_pylist() if self.query is None else [self.query] * len(ids)
        rows: list[dict | None] = [None] * len(ids)
        for query in dict.fromkeys(queries):
            positions = [i for i, q in enumerate(queries) if q == query]
            documents = [_document(ids[i], texts[i], titles[i], sentences[i]) for i in positions]
            fields = self.lentil.iter_fields(query, documents, batch_size=self.batch_size, cache_slots=False)
            for i, field in zip(positions, fields):
                rows[i] = {
                    "_id": field.document_id,
                    "score": field.score,
                    "active": field.active,
                    "truncated": field.truncated,
                    "slots": [s.to_dict() for s in field.slots],
                }
        table = {name: [row[name] for row in rows] for name in ("_id", "score", "active", "truncated")}
        table["slots"] = pa.array([row["slots"] for row in rows], type=SLOTS_TYPE)
        if self.query is None:
            table["query"] = queries
        return pa.table(table)


def _document(doc_id: str, text: str | None, title: str | None, sentences: list[str] | None) -> dict:
    """A row as the engine takes it: a null column of the batch is a key the document does not have."""
    document = {"_id": doc_id, "title": title}
    document.update({"sentences": sentences} if sentences is not None else {"text": text})
    return document


class EncodeShards:
    """`map_batches` callable: encodes index shards with an encoder loaded once per actor.

    Rows are `{"name", "docs"}` (the shard's documents as a JSON list); each comes back as `{"name",
    "rows", "arrays"}`: its `docs.jsonl` rows as a JSON list and its arrays as one `.npz` (no pickle).
    """

    def __init__(self, model: str | None = None, threads: int = 1) -> None:
        self.lentil = _load_model(model, 4, threads)

    def __call__(self, batch: pa.Table) -> pa.Table:
        from ..corpus.builder import encode_shard

        names, rows, arrays = [], [], []
        for name, docs in zip(batch.column("name").to_pylist(), batch.column("docs").to_pylist()):
            shard_rows, shard_arrays = encode_shard(json.loads(docs), self.lentil.encoder, self.lentil.slotter)
            buffer = io.BytesIO()
            np.savez(buffer, **shard_arrays)
            names.append(name)
            rows.append(json.dumps(shard_rows, ensure_ascii=False))
            arrays.append(buffer.getvalue())
        return pa.table({"name": names, "rows": rows, "arrays": pa.array(arrays, type=pa.binary())})


def connect(address: str | None = None) -> None:
    """Joins the Ray cluster at `address` ("auto", "HOST:PORT" or "ray://..."); None starts one on this
    machine unless `RAY_ADDRESS` names one. A process already connected stays on its cluster."""
    try:
        import ray
    except ImportError as error:
        raise SpicyLentilError("--engine ray needs Ray: pip install 'spicy-lentil[ray]'") from error
    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, log_to_driver=False, configure_logging=False)
    import ray.data

    ray.data.DataContext.get_current().enable_progress_bars = False  # the job shows its own


def default_concurrency(cpus_per_actor: int = 1) -> int:
    """One actor per `cpus_per_actor` CPUs of the connected cluster."""
    import ray

    return max(1, int(ray.cluster_resources().get("CPU", 1)) // cpus_per_actor)


def read_documents_dataset(paths: str | list[str]) -> "ray.data.Dataset":
    """JSONL (`.jsonl`) or Parquet (`.parquet`) files of `{"_id", "text", "title"?, "sentences"?}` rows as a Dataset.

    Paths must be readable from every node (shared storage or object store URIs). Unlike the CLI's
    reader, a malformed row fails the read: this is for data already known to be clean.

    Raises:
        ValueError: mixed or unknown file types, or rows without `_id` and `text`.
    """
    import ray.data

    paths = [paths] if isinstance(paths, str) else list(paths)
    if paths and all(p.endswith(".parquet") for p in paths):
        dataset = ray.data.read_parquet(paths)
    elif paths and all(p.endswith(".jsonl") for p in paths):
        dataset = ray.data.read_json(paths, lines=True)
    else:
        raise ValueError(f"expected only .jsonl or only .parquet files, got {paths}")
    missing = {"_id", "text"} - set(dataset.schema().names)
    if missing:
        raise ValueError(f"{paths}: rows lack {sorted(missing)}")
    return dataset


def score_dataset(
    dataset: "ray.data.Dataset",
    query: str | None = None,
    model: str | None = None,
    concurrency: int | None = None,
    batch_size: int = 32,
    pathways_per_query: int = 4,
    cpus_per_actor: int = 1,
) -> "ray.data.Dataset":
    """The Dataset of `ScoreBatches` output over `dataset` (lazy, as Ray Data is).

    Args:
        query: the query of every row; None uses each row's `query` column.
        concurrency: actors (default: one per `cpus_per_actor` CPUs of the cluster).
        batch_size: documents per model batch; each actor call gets four batches' worth.
    """
    if query is None and "query" not in dataset.schema().names:
        raise ValueError("give a query, or rows with a 'query' column")
    return dataset.map_batches(
        ScoreBatches,
        batch_format="pyarrow",
        batch_size=batch_size * 4,
        concurrency=concurrency or default_concurrency(cpus_per_actor),
        num_cpus=cpus_per_actor,
        fn_constructor_kwargs={
            "model": model,
            "query": query,
            "batch_size": batch_size,
            "pathways_per_query": pathways_per_query,
            "threads": cpus_per_actor,
        },
    )


def write_parquet(dataset: "ray.data.Dataset", folder: str | Path) -> None:
    """Writes a Dataset as a folder of Parquet files (Ray Data's writer; not exactly once on a rerun:
    `spicy-lentil score --engine ray --resume` is the job that is)."""
    dataset.write_parquet(str(folder))


def _map_windows(
    items: Iterator[dict],
    schema: pa.Schema,
    block_rows: int,
    window: int,
    pipeline: Callable[["ray.data.Dataset", int], "ray.data.Dataset"],
    weight: Callable[[dict], int] = lambda item: 1,
) -> Iterator[dict]:
    """Puts `items` into the object store in blocks of `block_rows` as they are read; each window of
    `window` (by `weight`) is one Ray Data execution of `pipeline(dataset, blocks)`, its rows yielded as they come.

    The object store spills to disk past its memory, so the driver holds one block at a time.
    """
    import ray
    import ray.data

    refs: list = []
    held = 0

    def execute() -> Iterator[dict]:
        dataset = pipeline(ray.data.from_arrow_refs(refs), len(refs))
        for batch in dataset.iter_batches(batch_size=None, batch_format="pyarrow"):
            yield from batch.to_pylist()

    block: list[dict] = []
    for item in itertools.chain(items, [None]):
        if item is not None:
            block.append(item)
            held += weight(item)
        if block and (item is None or len(block) == block_rows or held >= window):
            refs.append(ray.put(pa.Table.from_pylist(block, schema=schema)))
            block = []
        if refs and (item is None or held >= window):
            yield from execute()
            refs, held = [], 0


def score_job(
    query: str,
    documents: Iterable[dict],
    output: Path | None,
    rejects: Rejects,
    model: str | None = None,
    output_format: str = "jsonl",
    resume: bool = False,
    batch_size: int = 32,
    total: int | None = None,
    pathways_per_query: int = 4,
    concurrency: int | None = None,
    cpus_per_actor: int = 1,
    window: int = WINDOW_DOCUMENTS,
    show_progress_bar: bool = True,
) -> dict:
    """`jobs.score_job` with the scoring done by Ray actors (connect first: `connect`); same output, same summary.

    Rows are written as they come back, not in input order.
    """
    from .engine import SpicyLentil
    from .jobs import score_job as local_score_job

    check_query(query)
    # Loaded here only to fail early, on the driver, on a bad model folder or k, before any actor starts.
    SpicyLentil.from_pretrained(model).pathways_per_query = pathways_per_query
    concurrency = concurrency or default_concurrency(cpus_per_actor)

    def scorer(pending: Iterator[dict]) -> Iterator[dict]:
        documents = (
            {"_id": d["_id"], "text": d["text"], "title": d.get("title"), "sentences": d.get("sentences")}
            for d in pending
        )
        yield from _map_windows(
            documents,
            DOCUMENT_SCHEMA,
            BLOCK_DOCUMENTS,
            window,
            lambda dataset, blocks: score_dataset(
                dataset, query, model, min(concurrency, blocks), batch_size, pathways_per_query, cpus_per_actor
            ),
        )

    return local_score_job(
        None,
        query,
        documents,
        output,
        rejects,
        output_format=output_format,
        resume=resume,
        batch_size=batch_size,
        total=total,
        show_progress_bar=show_progress_bar,
        scorer=scorer,
    )


def build_index(
    corpus: str | Path,
    folder: str | Path,
    model: str | None = None,
    shard_size: int = 1000,
    resume: bool = False,
    rejects: Rejects | None = None,
    concurrency: int | None = None,
    cpus_per_actor: int = 1,
    window: int = WINDOW_DOCUMENTS,
    show_progress_bar: bool = True,
    token_codec: "CodecSpec | None" = CodecSpec(),
) -> "CorpusIndex":
    """`builder.build_index` with shards encoded by Ray actors (connect first); the same index on disk.

    The driver loads the model too, for the settings the manifest records, and writes every shard
    (compressing its token vectors: the codec is trained on the first shard, wherever it was encoded).
    """
    from ..corpus import builder
    from .engine import SpicyLentil

    lentil = SpicyLentil.from_pretrained(model)
    concurrency = concurrency or default_concurrency(cpus_per_actor)

    def encode(dataset: "ray.data.Dataset", blocks: int) -> "ray.data.Dataset":
        return dataset.map_batches(
            EncodeShards,
            batch_format="pyarrow",
            batch_size=1,
            concurrency=min(concurrency, blocks),
            num_cpus=cpus_per_actor,
            fn_constructor_kwargs={"model": model, "threads": cpus_per_actor},
        )

    def encode_shards(shards: Iterator[tuple[str, list[dict]]]) -> Iterator[tuple[str, list[dict], dict]]:
        items = (
            {"name": name, "docs": json.dumps(docs, ensure_ascii=False), "count": len(docs)} for name, docs in shards
        )
        for shard in _map_windows(items, SHARD_SCHEMA, 1, window, encode, weight=lambda item: item["count"]):
            with np.load(io.BytesIO(shard["arrays"]), allow_pickle=False) as stored:
                yield shard["name"], json.loads(shard["rows"]), {key: stored[key] for key in stored.files}

    return builder.build_index(
        corpus,
        folder,
        lentil.encoder,
        lentil.slotter,
        shard_size=shard_size,
        resume=resume,
        rejects=rejects,
        show_progress_bar=show_progress_bar,
        encode_shards=encode_shards,
        token_codec=token_codec,
    )
