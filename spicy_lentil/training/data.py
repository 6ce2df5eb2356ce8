"""Training and evaluation data through Hugging Face `datasets`.

Three sources, one result (`RelevanceData`):

* a BEIR-layout folder: `corpus.jsonl` (`_id`, `text`, optional `title`, `sentences`),
  `queries.jsonl` (`_id`, `text`), `qrels/<split>.tsv` (`query-id`, `corpus-id`, `score`) and,
  optionally, `slot_qrels/<split>.tsv` (`query-id`, `corpus-id`, `slot-index`, `score`, `stance`):
  the rationale sentences, 0-based indices into the document's `sentences`; and, optionally,
  `unanswerable/<split>.tsv` (`query-id`, `corpus-id`): questions whose document holds no answer;
* a local pairs file, `.jsonl`, `.csv` or `.parquet`, one row per (query, document) with columns
  `query`, `text`, `label` (1 relevant, 0 not) and optional `query_id`, `doc_id`, `title` and `split`
  (a split's queries are its rows'; the corpus is every row's document, so all splits rank one corpus);
* a Hugging Face hub name in the BEIR convention (`<name>` with configs `corpus` and `queries`,
  `<name>-qrels` with the split), when the machine is online.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import DataError

STANCES = {"NEUTRAL": 0, "SUPPORT": 1, "CONTRADICT": 2}


@dataclass
class RelevanceData:
    """A corpus, queries and relevance judgements for one split."""

    name: str
    split: str
    corpus_path: Path  # a JSONL corpus file (written to a cache folder for non-BEIR sources)
    corpus: dict[str, dict]  # _id -> {"_id", "title", "text", "sentences"?}
    queries: dict[str, str]  # query id -> text, only queries judged in this split
    qrels: dict[str, dict[str, int]]  # query id -> {doc id: relevance}
    slot_qrels: dict[tuple[str, str], dict[int, int]] = field(default_factory=dict)  # (query, doc) -> {slot: stance}
    # (query id, query text, doc id): questions asked of a document that holds no answer
    # (`unanswerable/<split>.tsv`, as WikiQA has them); every slot there should score low.
    unanswerable: list[tuple[str, str, str]] = field(default_factory=list)


def load_data(source: str | Path, split: str, cache_dir: str | Path = "cache") -> RelevanceData:
    """Loads a split from a BEIR folder, a local pairs file or a hub name (see the module docstring).

    Raises:
        DataError: a missing file or column, or qrels naming unknown ids.
    """
    path = Path(source)
    if path.is_dir():
        return _load_beir(path, split)
    if path.suffix in (".jsonl", ".json", ".csv", ".parquet"):
        if not path.is_file():
            raise DataError(f"data file not found: {path}")
        return _load_pairs(path, split, Path(cache_dir))
    if path.exists() or "/" not in str(source) or str(source).startswith((".", "/")):
        raise DataError(f"{source}: not a BEIR folder, nor a .jsonl/.csv/.parquet pairs file, nor a hub dataset name")
    return _load_hub(str(source), split, Path(cache_dir))


def _dataset(kind: str, path: Path, required: list[str], **kwargs):
    import datasets

    if not path.is_file():
        raise DataError(f"missing file: {path}")
    datasets.disable_progress_bars()
    try:
        table = datasets.load_dataset(kind, data_files=str(path), split="train", **kwargs)
    except Exception as error:  # datasets wraps parser errors in many types
        raise DataError(f"{path}: cannot be read as {kind}: {error}") from error
    missing = [c for c in required if c not in table.column_names]
    if missing:
        raise DataError(f"{path}: missing column(s) {missing}; found {table.column_names}")
    return table


def _strings(path: Path):
    """All-string features for a TSV, so ids like "007" keep their zeros."""
    import datasets

    if not path.is_file():
        raise DataError(f"missing file: {path}")
    header = path.open(encoding="utf-8").readline().rstrip("\n").split("\t")
    return datasets.Features({name: datasets.Value("string") for name in header})


def _check_ids(path: Path, kind: str, ids: list[str], known) -> None:
    unknown = sorted({i for i in ids if i not in known})
    if unknown:
        raise DataError(f"{path}: {len(unknown)} unknown {kind} id(s), first: {unknown[:5]}")


def _load_beir(folder: Path, split: str) -> RelevanceData:
    corpus_table = _dataset("json", folder / "corpus.jsonl", ["_id", "text"])
    corpus = {}
    for row in corpus_table:
        doc = {"_id": str(row["_id"]), "title": row.get("title") or None, "text": row["text"]}
        if row.get("sentences"):
            doc["sentences"] = list(row["sentences"])
        corpus[doc["_id"]] = doc
    query_table = _dataset("json", folder / "queries.jsonl", ["_id", "text"])
    all_queries = {str(row["_id"]): row["text"] for row in query_table}
    qrels_path = folder / "qrels" / f"{split}.tsv"
    qrel_table = _dataset(
        "csv", qrels_path, ["query-id", "corpus-id", "score"], delimiter="\t", features=_strings(qrels_path)
    )
    qrels: dict[str, dict[str, int]] = {}
    for row in qrel_table:
        qrels.setdefault(str(row["query-id"]), {})[str(row["corpus-id"])] = int(row["score"])
    _check_ids(qrels_path, "query", list(qrels), all_queries)
    _check_ids(qrels_path, "corpus", [d for docs in qrels.values() for d in docs], corpus)
    slot_qrels: dict[tuple[str, str], dict[int, int]] = {}
    slot_path = folder / "slot_qrels" / f"{split}.tsv"
    if slot_path.is_file():
        slot_table = _dataset(
            "csv",
            slot_path,
            ["query-id", "corpus-id", "slot-index", "score"],
            delimiter="\t",
            features=_strings(slot_path),
        )
        for row in slot_table:
            if int(row["score"]) <= 0:
                continue
            stance = STANCES.get(str(row.get("stance") or "SUPPORT").upper(), STANCES["SUPPORT"])
            slot_qrels.setdefault((str(row["query-id"]), str(row["corpus-id"])), {})[int(row["slot-index"])] = stance
        _check_ids(slot_path, "query", [q for q, _ in slot_qrels], all_queries)
        _check_ids(slot_path, "corpus", [d for _, d in slot_qrels], corpus)
    unanswerable = []
    unanswerable_path = folder / "unanswerable" / f"{split}.tsv"
    if unanswerable_path.is_file():
        table = _dataset(
            "csv", unanswerable_path, ["query-id", "corpus-id"], delimiter="\t", features=_strings(unanswerable_path)
        )
        pairs = [(str(row["query-id"]), str(row["corpus-id"])) for row in table]
        _check_ids(unanswerable_path, "query", [q for q, _ in pairs], all_queries)
        _check_ids(unanswerable_path, "corpus", [d for _, d in pairs], corpus)
        unanswerable = [(q, all_queries[q], d) for q, d in pairs]
    queries = {q: all_queries[q] for q in qrels}
    return RelevanceData(folder.name, split, folder / "corpus.jsonl", corpus, queries, qrels, slot_qrels, unanswerable)


def _load_pairs(path: Path, split: str, cache_dir: Path) -> RelevanceData:
    kind = {".jsonl": "json", ".json": "json", ".csv": "csv", ".parquet": "parquet"}[path.suffix]
    table = _dataset(kind, path, ["query", "text", "label"])
    has_splits = "split" in table.column_names
    if has_splits and split not in set(table["split"]):
        raise DataError(f"{path}: no row of split {split!r}; its splits are {sorted(set(map(str, table['split'])))}")
    corpus, queries, qrels = {}, {}, {}
    for row in table:
        text = row["text"]
        doc_id = str(row.get("doc_id") or hashlib.sha1(text.encode("utf-8")).hexdigest()[:16])
        corpus[doc_id] = {"_id": doc_id, "title": row.get("title") or None, "text": text}
        if has_splits and row["split"] != split:
            continue
        query_id = str(row.get("query_id") or hashlib.sha1(row["query"].encode("utf-8")).hexdigest()[:16])
        queries[query_id] = row["query"]
        judged = qrels.setdefault(query_id, {})
        judged[doc_id] = max(judged.get(doc_id, 0), int(row["label"]))
    qrels = {q: docs for q, docs in qrels.items() if any(v > 0 for v in docs.values())}
    if not qrels:
        raise DataError(f"{path}: no row{f' of split {split!r}' if has_splits else ''} has label > 0, "
                        "so there is nothing to rank")
    corpus_path = _write_corpus(corpus, cache_dir / f"pairs-{path.stem}")
    return RelevanceData(path.stem, split, corpus_path, corpus, {q: queries[q] for q in qrels}, qrels)


def _load_hub(name: str, split: str, cache_dir: Path) -> RelevanceData:
    import datasets

    try:
        corpus_table = datasets.load_dataset(name, "corpus", split="corpus")
        query_table = datasets.load_dataset(name, "queries", split="queries")
        qrel_table = datasets.load_dataset(f"{name}-qrels", split=split)
    except Exception as error:
        raise DataError(f"cannot load hub dataset {name!r} (split {split!r}): {error}") from error
    corpus = {
        str(r["_id"]): {"_id": str(r["_id"]), "title": r.get("title") or None, "text": r["text"]} for r in corpus_table
    }
    all_queries = {str(r["_id"]): r["text"] for r in query_table}
    qrels: dict[str, dict[str, int]] = {}
    for row in qrel_table:
        qrels.setdefault(str(row["query-id"]), {})[str(row["corpus-id"])] = int(row["score"])
    corpus_path = _write_corpus(corpus, cache_dir / f"hub-{name.replace('/', '--')}")
    return RelevanceData(
        name, split, corpus_path, corpus, {q: all_queries[q] for q in qrels if q in all_queries}, qrels
    )


def _write_corpus(corpus: dict[str, dict], folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "corpus.jsonl"
    lines = "".join(json.dumps(doc, ensure_ascii=False) + "\n" for doc in corpus.values())
    if not path.is_file() or path.read_text(encoding="utf-8") != lines:
        path.write_text(lines, encoding="utf-8")
    return path


def first_queries(data: RelevanceData, n: int) -> RelevanceData:
    """The split restricted to its first `n` queries by id (and their judgements)."""
    if len(data.queries) <= n:
        return data
    return query_subset(data, sorted(data.queries)[:n])


def query_subset(data: RelevanceData, keep: list[str]) -> RelevanceData:
    """The split restricted to the query ids of `keep`, in that order (and their judgements)."""
    kept = set(keep)
    return dataclasses.replace(
        data,
        queries={q: data.queries[q] for q in keep if q in data.queries},
        qrels={q: data.qrels[q] for q in keep if q in data.qrels},
        slot_qrels={k: v for k, v in data.slot_qrels.items() if k[0] in kept},
        unanswerable=[u for u in data.unanswerable if u[0] in kept],
    )
