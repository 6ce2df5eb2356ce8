"""The corpus index: slots, slot and token embeddings, document embeddings and BM25, built once on disk.

Layout of an index folder:

    manifest.json            encoder, slotter settings, corpus hash, shards done, complete flag
    shard-00000/             one folder per `shard_size` documents, written atomically
        docs.jsonl           {"_id", "title", "text", "spans": [[start, end], ...], "truncated"}
        doc_slots.npy        (docs + 1,) int64 offsets of each document's slots
        slot_embeddings.npy  (slots, dim) float32
        slot_tokens.npy      (slots + 1,) int64 offsets of each slot's tokens
        tokens.npy           (tokens, dim) float16 contextual token embeddings
        token_ids.npy        (tokens,) int32
        doc_embeddings.npy   (docs, dim) float32 normalised mean of the title and slot embeddings
        title_embeddings.npy (docs, dim) float32 embedding of the title; zeros where there is none
    bm25/                    bm25s index over "title text" (no pickle)

Building holds one shard in memory at a time, and `resume` skips the shards already written.
A manifest that names another corpus, encoder or slotter setting makes the index stale: it is
rebuilt (or, when opened for search, refused), never silently used.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from .batching import DocumentBatch, DocumentEncoding
from .encoder import Encoder, Encoding
from .errors import DamagedFileError, SpicyLentilError, check_count
from .io import Rejects, iter_jsonl_documents
from .slots import Slot, Slotter

FORMAT_VERSION = 2
MANIFEST = "manifest.json"
SHARD_NAME = re.compile(r"shard-\d{5}")  # what `build` names shards; a manifest naming anything else is not followed
ARRAYS = ("doc_slots", "slot_embeddings", "slot_tokens", "tokens", "token_ids", "doc_embeddings", "title_embeddings")


class StaleIndexError(SpicyLentilError):
    """The index on disk was built from another corpus, encoder or slotter setting."""


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def bm25_tokenize(texts: list[str]):
    """The one tokenization BM25 uses for documents and queries: lower-case, English stop words, Snowball stems."""
    import bm25s
    import Stemmer

    return bm25s.tokenize(texts, stopwords="en", stemmer=Stemmer.Stemmer("english"), show_progress=False)


def document_slots(slotter: Slotter, document: dict) -> tuple[list[Slot], bool]:
    """A document's slots: its own sentence split when it ships one that matches its text, else the slotter's."""
    if document.get("sentences"):
        known = slotter.split_known(document["text"], document["sentences"])
        if known is not None:
            return known
    return slotter.split(document["text"])


def index_settings(encoder: Encoder, slotter: Slotter) -> dict:
    return {
        "format": FORMAT_VERSION,
        "encoder": encoder.name,
        "encoder_weights": encoder.weights_digest,
        "embedding_dim": encoder.dim,
        "slotter": {"window_tokens": slotter.window_tokens, "stride": slotter.stride, "max_slots": slotter.max_slots},
    }


@dataclass
class _Shard:
    docs: list[dict]
    doc_slots: np.ndarray
    slot_embeddings: np.ndarray
    slot_tokens: np.ndarray
    tokens: np.ndarray
    token_ids: np.ndarray
    doc_embeddings: np.ndarray
    title_embeddings: np.ndarray

    folder: Path
    offsets: dict  # array name -> byte offset of its data in the .npy file, for `rows`
    handles: dict = field(default_factory=dict, repr=False)  # array name -> open file, for `rows`

    @classmethod
    def load(cls, folder: Path) -> "_Shard":
        """Opens a shard; a missing, truncated or inconsistent file raises `DamagedFileError` naming it."""
        docs = []
        try:
            with open(folder / "docs.jsonl", encoding="utf-8") as handle:
                for number, line in enumerate(handle, start=1):
                    doc = json.loads(line)
                    if not (isinstance(doc, dict) and isinstance(doc.get("_id"), str)
                            and isinstance(doc.get("text"), str) and isinstance(doc.get("spans"), list)):
                        raise ValueError(f"line {number} is not a document row")
                    docs.append(doc)
        except (OSError, UnicodeDecodeError, ValueError) as error:
            raise DamagedFileError(f"{folder / 'docs.jsonl'}: {error}; the index is damaged, rebuild it") from error
        maps = {}
        for name in ARRAYS:
            try:
                maps[name] = np.load(folder / f"{name}.npy", mmap_mode="r", allow_pickle=False)
            except (OSError, ValueError, EOFError) as error:
                raise DamagedFileError(
                    f"{folder / name}.npy: {error or 'empty file'}; the index is damaged, rebuild it") from error
        _check_shard(folder, docs, maps)
        # Plain ndarray views of the maps: slicing an np.memmap runs Python-level bookkeeping on every
        # slice, and a search slices a few hundred times.
        arrays = {name: array.view(np.ndarray) for name, array in maps.items()}
        return cls(docs=docs, folder=folder, offsets={name: array.offset for name, array in maps.items()}, **arrays)

    def read(self, name: str, start: int, out: np.ndarray) -> None:
        """Reads rows [start, start + len(out)) of one stored array into `out`.

        Read with `pread` where the system has it: touching a memory map page by page faults once per
        4 KiB, which on virtual machines costs more than the copy itself (the token rows of one search
        are about 20 MB).
        """
        source = getattr(self, name)
        if not hasattr(os, "preadv"):
            out[...] = source[start: start + out.shape[0]]
            return
        if out.nbytes:
            if name not in self.handles:
                self.handles[name] = open(self.folder / f"{name}.npy", "rb", buffering=0)  # closed with the shard
            row_bytes = out.nbytes // out.shape[0]
            read = os.preadv(self.handles[name].fileno(), [memoryview(out).cast("B")], self.offsets[name] + start * row_bytes)
            if read != out.nbytes:
                raise OSError(f"{self.folder / name}.npy: short read ({read} of {out.nbytes} bytes); the index is damaged")


class CorpusIndex:
    """A corpus indexed once for first-stage retrieval and encoder-free reranking."""

    def __init__(self, folder: Path, manifest: dict, shards: list[_Shard]) -> None:
        self.folder = folder
        self.manifest = manifest
        self._shards = shards
        self._locate = [(s, j) for s, shard in enumerate(shards) for j in range(len(shard.docs))]
        self.doc_ids = [doc["_id"] for shard in shards for doc in shard.docs]
        self.position = {doc_id: i for i, doc_id in enumerate(self.doc_ids)}
        self._bm25 = None
        self._doc_matrix: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.doc_ids)

    # ---- building ----------------------------------------------------------------------------

    @classmethod
    def build(
        cls, corpus: str | Path, folder: str | Path, encoder: Encoder, slotter: Slotter, shard_size: int = 1000,
        resume: bool = False, rejects: Rejects | None = None, show_progress_bar: bool = True,
        encode_shards: Callable[[Iterator[tuple[str, list[dict]]]], Iterator[tuple[str, list[dict], dict]]] | None = None,
    ) -> "CorpusIndex":
        """Indexes a JSONL corpus of `{"_id", "title"?, "text", "sentences"?}` rows into `folder`.

        Args:
            corpus: the JSONL file.
            folder: the index folder (created; an index of another corpus or setting there is replaced).
            encoder: the encoder whose embeddings are stored.
            slotter: how documents are cut into slots.
            shard_size: documents per shard (memory while building is about one shard).
            resume: continue an interrupted build of the same corpus and settings.
            rejects: where malformed rows are reported (line number and reason).
            encode_shards: maps `(name, documents)` shards to `(name, rows, arrays)` as `encode_shard`
                does, in any order (`spicy_lentil.distributed` encodes them on a Ray cluster); None
                encodes them here, one at a time.
        """
        folder = Path(folder)
        corpus = Path(corpus)
        check_count(shard_size, "shard_size")
        if not corpus.is_file():
            raise FileNotFoundError(f"corpus file not found: {corpus}")
        settings = index_settings(encoder, slotter)
        wanted = {**settings, "corpus_sha256": file_sha256(corpus), "shard_size": shard_size}
        manifest = _read_manifest(folder)
        same = (manifest is not None and all(manifest.get(k) == v for k, v in wanted.items())
                and _names_shards(manifest))
        if same and manifest.get("complete"):
            return cls.load(folder)
        if not (same and resume):
            _clear(folder)
            manifest = {**wanted, "corpus": str(corpus.resolve()), "shards": [], "complete": False}
            _write_manifest(folder, manifest)
        done = {s["name"] for s in manifest["shards"]}
        started = time.perf_counter()
        rejects = rejects or Rejects()
        progress = tqdm(desc="indexing", unit="doc", disable=not show_progress_bar)

        def pending(handle) -> Iterator[tuple[str, list[dict]]]:
            for number, batch in enumerate(_batches(iter_jsonl_documents(handle, str(corpus), rejects), shard_size)):
                name = f"shard-{number:05d}"
                if name in done:
                    progress.update(len(batch))
                else:
                    yield name, batch

        def encode_here(shards: Iterator[tuple[str, list[dict]]]) -> Iterator[tuple[str, list[dict], dict]]:
            for name, docs in shards:
                yield (name, *encode_shard(docs, encoder, slotter))

        with open(corpus, "rb") as handle:  # decoded line by line: one bad byte costs its row, not the build
            for name, rows, arrays in (encode_shards or encode_here)(pending(handle)):
                stats = save_shard(folder / name, rows, arrays)
                # Shards encoded elsewhere may arrive out of order; the manifest lists them in corpus order.
                entries = manifest["shards"] + [{"name": name, **stats}]
                manifest["shards"] = sorted(entries, key=lambda s: int(s["name"].split("-")[1]))
                _write_manifest(folder, manifest)
                progress.update(len(rows))
        progress.close()
        _build_bm25(folder, manifest)
        manifest["complete"] = True
        manifest["rejected_rows"] = rejects.count
        manifest["build_seconds"] = round(manifest.get("build_seconds", 0.0) + time.perf_counter() - started, 1)
        _write_manifest(folder, manifest)
        return cls.load(folder)

    # ---- loading and checking ------------------------------------------------------------------

    @classmethod
    def load(cls, folder: str | Path, encoder: Encoder | None = None, slotter: Slotter | None = None) -> "CorpusIndex":
        """Opens a complete index; with `encoder`/`slotter`, refuses one built with other settings.

        Raises:
            StaleIndexError: incomplete, or built with another encoder or slotter setting.
        """
        folder = Path(folder)
        manifest = _read_manifest(folder)
        if manifest is None:
            if (folder / MANIFEST).exists():
                raise DamagedFileError(f"{folder / MANIFEST} is not a readable JSON manifest; rebuild the index")
            raise StaleIndexError(f"{folder} is not a Spicy Lentil index (no {MANIFEST})")
        _check_manifest(folder, manifest)
        if not manifest.get("complete"):
            raise StaleIndexError(f"{folder}: the index build did not finish; run `spicy-lentil index ... --resume`")
        if manifest.get("format") != FORMAT_VERSION:
            raise StaleIndexError(f"{folder}: index format {manifest.get('format')}, this version reads {FORMAT_VERSION}")
        if encoder is not None and slotter is not None:
            expected = index_settings(encoder, slotter)
            diff = sorted(k for k, v in expected.items() if manifest.get(k) != v)
            if diff:
                raise StaleIndexError(
                    f"{folder} was built with other settings ({', '.join(diff)}: "
                    f"{[manifest.get(k) for k in diff]} vs {[expected[k] for k in diff]}); rebuild it for this model"
                )
        shards = [_Shard.load(folder / s["name"]) for s in manifest["shards"]]
        return cls(folder, manifest, shards)

    @classmethod
    def for_corpus(cls, corpus: str | Path, encoder: Encoder, slotter: Slotter, cache_dir: str | Path = "cache",
                   show_progress_bar: bool = True) -> "CorpusIndex":
        """The cached index of a corpus file under `cache_dir`, built (or rebuilt when stale, resumed when cut) as needed."""
        corpus = Path(corpus).resolve()
        key = hashlib.sha256(f"{corpus}|{encoder.name}|{encoder.weights_digest}".encode("utf-8")).hexdigest()[:12]
        folder = Path(cache_dir) / f"index-{corpus.parent.name}-{key}"
        return cls.build(corpus, folder, encoder, slotter, resume=True, show_progress_bar=show_progress_bar)

    def is_stale_for(self, corpus: str | Path) -> bool:
        """True when `corpus` is not the file this index was built from (by content hash)."""
        return self.manifest.get("corpus_sha256") != file_sha256(corpus)

    # ---- access --------------------------------------------------------------------------------

    def document(self, i: int) -> dict:
        """`{"_id", "title", "text"}` of document i."""
        s, j = self._locate[i]
        doc = self._shards[s].docs[j]
        return {"_id": doc["_id"], "title": doc["title"], "text": doc["text"]}

    def slots(self, i: int) -> tuple[list[Slot], bool]:
        s, j = self._locate[i]
        doc = self._shards[s].docs[j]
        return [Slot(doc["text"][a:b], a, b) for a, b in doc["spans"]], doc["truncated"]

    def token_count(self, i: int) -> int:
        """Number of stored token embeddings of document i (all its slots)."""
        s, j = self._locate[i]
        shard = self._shards[s]
        return int(shard.slot_tokens[shard.doc_slots[j + 1]] - shard.slot_tokens[shard.doc_slots[j]])

    def document_encoding(self, i: int) -> DocumentEncoding:
        """Stored encodings of document i's slots, packed."""
        batch = self.document_batch([i])
        return DocumentEncoding(slots=batch.slots, tokens=batch.tokens, token_ids=batch.token_ids, token_slot=batch.token_slot)

    def document_batch(self, positions: Sequence[int]) -> DocumentBatch:
        """Stored encodings of several documents, packed in the given order: what reranking reads
        instead of running the encoder. Each document's rows are read straight into place."""
        spans = []  # per document: its shard, its slots [first, last) and their token offsets
        for i in positions:
            s, j = self._locate[i]
            shard = self._shards[s]
            first, last = int(shard.doc_slots[j]), int(shard.doc_slots[j + 1])
            spans.append((shard, first, last, shard.slot_tokens[first: last + 1]))
        slot_counts = np.array([last - first for _, first, last, _ in spans], dtype=np.int64)
        token_counts = np.array([bounds[-1] - bounds[0] for *_, bounds in spans], dtype=np.int64)
        dim = self._shards[0].slot_embeddings.shape[1] if self._shards else 0
        slots = np.empty((int(slot_counts.sum()), dim), dtype=np.float32)
        tokens = np.empty((int(token_counts.sum()), dim), dtype=np.float16)
        token_ids = np.empty(tokens.shape[0], dtype=np.int32)
        slot_lengths = np.empty(slots.shape[0], dtype=np.int64)  # tokens per slot
        slot_at = token_at = 0
        for (shard, first, last, bounds), n_tokens in zip(spans, token_counts.tolist()):
            shard.read("slot_embeddings", first, slots[slot_at: slot_at + last - first])
            shard.read("tokens", int(bounds[0]), tokens[token_at: token_at + n_tokens])
            shard.read("token_ids", int(bounds[0]), token_ids[token_at: token_at + n_tokens])
            slot_lengths[slot_at: slot_at + last - first] = np.diff(bounds)
            slot_at, token_at = slot_at + last - first, token_at + n_tokens
        slot_in_document = np.arange(slots.shape[0]) - np.repeat(np.cumsum(slot_counts) - slot_counts, slot_counts)
        return DocumentBatch(
            slots=torch.from_numpy(slots),
            slot_counts=torch.from_numpy(slot_counts),
            tokens=torch.from_numpy(tokens),
            token_counts=torch.from_numpy(token_counts),
            token_ids=torch.from_numpy(token_ids.astype(np.int64)),
            token_slot=torch.from_numpy(np.repeat(slot_in_document, slot_lengths)),
        )

    def title_encoding(self, i: int) -> Encoding | None:
        """Document i's title as an `Encoding` (sentence embedding only), or None without a title."""
        s, j = self._locate[i]
        if not self._shards[s].docs[j]["title"]:
            return None
        embedding = torch.from_numpy(np.array(self._shards[s].title_embeddings[j], dtype=np.float32))
        return Encoding(embedding, torch.zeros(0, embedding.shape[0], dtype=torch.float16), torch.zeros(0, dtype=torch.long))

    def doc_embeddings(self) -> np.ndarray:
        """(docs, dim) document embeddings, all shards (kept in memory after the first call)."""
        if self._doc_matrix is None:
            self._doc_matrix = np.concatenate([np.asarray(shard.doc_embeddings) for shard in self._shards])
        return self._doc_matrix

    def best_slot_cosine(self, query: np.ndarray) -> np.ndarray:
        """(docs,) the highest cosine between the query and any slot of each document; -1 for empty documents."""
        scores = []
        for shard in self._shards:
            sims = np.asarray(shard.slot_embeddings) @ query  # (slots,)
            counts = np.diff(np.asarray(shard.doc_slots))
            best = np.full(len(counts), -1.0, dtype=np.float32)
            nonempty = counts > 0
            if nonempty.any():
                best[nonempty] = np.maximum.reduceat(sims, np.asarray(shard.doc_slots)[:-1][nonempty])
            scores.append(best)
        return np.concatenate(scores)

    def bm25_scores(self, query: str) -> np.ndarray:
        """(docs,) BM25 of every document for the query."""
        import bm25s

        if self._bm25 is None:
            try:
                self._bm25 = bm25s.BM25.load(str(self.folder / "bm25"), mmap=False, show_progress=False)
            except (OSError, ValueError, EOFError, KeyError) as error:
                raise DamagedFileError(f"{self.folder / 'bm25'}: {error}; the index is damaged, rebuild it") from error
        tokens = bm25_tokenize([query])
        vocab = {v: k for k, v in tokens.vocab.items()}
        words = [vocab[t] for t in tokens.ids[0]]
        if not words:  # only stop words or punctuation: BM25 has nothing to match, the dense signals decide
            return np.zeros(len(self), dtype=np.float32)
        return np.asarray(self._bm25.get_scores(words), dtype=np.float32)


def _batches(rows: Iterator[dict], size: int) -> Iterator[list[dict]]:
    batch = []
    for row in rows:
        batch.append(row)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def encode_shard(docs: list[dict], encoder: Encoder, slotter: Slotter) -> tuple[list[dict], dict[str, np.ndarray]]:
    """One shard's `docs.jsonl` rows and arrays (see the layout above), computed in memory."""
    split = [document_slots(slotter, doc) for doc in docs]
    slot_texts = [slot.text for slots, _ in split for slot in slots]
    titles = [doc["title"] for doc in docs if doc.get("title")]
    # One encoder pass over slots and titles: the document vector is derived from them, so indexing
    # costs little more than encoding the slots alone.
    everything = encoder.encode(slot_texts + titles, use_cache=False) if slot_texts or titles else []
    encodings, title_encodings = everything[: len(slot_texts)], iter(everything[len(slot_texts):])
    dim = encoder.dim
    doc_slots = np.concatenate([[0], np.cumsum([len(slots) for slots, _ in split])]).astype(np.int64)
    slot_embeddings = torch.stack([e.embedding for e in encodings]).numpy() if encodings else np.zeros((0, dim), np.float32)
    title_embeddings = np.zeros((len(docs), dim), np.float32)
    doc_embeddings = np.zeros((len(docs), dim), np.float32)
    for row, doc in enumerate(docs):
        parts = [slot_embeddings[doc_slots[row]: doc_slots[row + 1]]]
        if doc.get("title"):
            title_embeddings[row] = next(title_encodings).embedding.numpy()
            parts.append(title_embeddings[row: row + 1])
        stacked = np.concatenate(parts)
        if len(stacked):
            mean = stacked.mean(axis=0)
            doc_embeddings[row] = mean / max(float(np.linalg.norm(mean)), 1e-12)
    token_counts = [e.tokens.shape[0] for e in encodings]
    arrays = {
        "doc_slots": doc_slots,
        "slot_embeddings": slot_embeddings.astype(np.float32),
        "slot_tokens": np.concatenate([[0], np.cumsum(token_counts)]).astype(np.int64),
        "tokens": torch.cat([e.tokens for e in encodings]).numpy() if encodings else np.zeros((0, dim), np.float16),
        "token_ids": (torch.cat([e.token_ids for e in encodings]).numpy().astype(np.int32) if encodings
                      else np.zeros(0, np.int32)),
        "doc_embeddings": doc_embeddings,
        "title_embeddings": title_embeddings,
    }
    rows = [{"_id": doc["_id"], "title": doc.get("title"), "text": doc["text"],
             "spans": [[s.start, s.end] for s in slots], "truncated": truncated} for doc, (slots, truncated) in zip(docs, split)]
    return rows, arrays


def save_shard(folder: Path, rows: list[dict], arrays: dict[str, np.ndarray]) -> dict:
    """Writes a shard folder atomically; returns its manifest entry's counts."""
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    with open(tmp / "docs.jsonl", "w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    for name, array in arrays.items():
        np.save(tmp / f"{name}.npy", array, allow_pickle=False)
    shutil.rmtree(folder, ignore_errors=True)
    os.replace(tmp, folder)  # a shard exists whole or not at all
    return {"docs": len(rows), "slots": int(arrays["slot_embeddings"].shape[0]), "tokens": int(arrays["tokens"].shape[0])}


def _build_bm25(folder: Path, manifest: dict) -> None:
    import bm25s

    texts = []
    for shard in manifest["shards"]:
        with open(folder / shard["name"] / "docs.jsonl", encoding="utf-8") as handle:
            for line in handle:
                doc = json.loads(line)
                texts.append(f"{doc['title'] or ''} {doc['text']}")
    retriever = bm25s.BM25()
    retriever.index(bm25_tokenize(texts), show_progress=False)
    shutil.rmtree(folder / "bm25", ignore_errors=True)
    retriever.save(str(folder / "bm25"), show_progress=False)


def _read_manifest(folder: Path) -> dict | None:
    try:
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return manifest if isinstance(manifest, dict) else None


def _names_shards(manifest: dict) -> bool:
    """Whether the manifest lists shards as `build` writes them (else a resumed build starts over)."""
    shards = manifest.get("shards")
    return isinstance(shards, list) and all(
        isinstance(s, dict) and isinstance(s.get("name"), str) and SHARD_NAME.fullmatch(s["name"]) for s in shards)


def _check_manifest(folder: Path, manifest: dict) -> None:
    """A complete manifest lists shards by the names `build` gives them, each a folder inside the index."""
    shards = manifest.get("shards")
    if not isinstance(shards, list) or not all(isinstance(s, dict) and isinstance(s.get("name"), str) for s in shards):
        raise DamagedFileError(
            f"{folder / MANIFEST}: 'shards' must be a list of {{\"name\": ...}} objects; rebuild the index")
    for shard in shards:
        if not SHARD_NAME.fullmatch(shard["name"]):
            raise DamagedFileError(f"{folder / MANIFEST}: shard name {shard['name']!r} is not one this index writes")
        if not (folder / shard["name"]).is_dir():
            raise DamagedFileError(f"{folder / shard['name']} is missing; rebuild the index")


def _check_shard(folder: Path, docs: list[dict], arrays: dict) -> None:
    """The shard's arrays agree with each other and with its documents (a damaged file would misread silently)."""
    slots, tokens = arrays["slot_embeddings"].shape[0], arrays["tokens"].shape[0]
    expected = {"doc_slots": (len(docs) + 1,), "slot_tokens": (slots + 1,), "token_ids": (tokens,),
                "doc_embeddings": (len(docs),), "title_embeddings": (len(docs),)}
    for name, shape in expected.items():
        if arrays[name].shape[: len(shape)] != shape:
            raise DamagedFileError(
                f"{folder / name}.npy has shape {arrays[name].shape}, expected {shape}; rebuild the index")
    if int(arrays["doc_slots"][-1]) != slots or int(arrays["slot_tokens"][-1]) != tokens:
        raise DamagedFileError(f"{folder}: slot and token offsets do not match the stored arrays; rebuild the index")


def _write_manifest(folder: Path, manifest: dict) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, folder / MANIFEST)


def _clear(folder: Path) -> None:
    """Removes what an index build writes, and nothing else a user may keep in the folder."""
    if not folder.exists():
        return
    for child in folder.iterdir():
        if child.name.startswith("shard-") or child.name in ("bm25", MANIFEST, MANIFEST + ".tmp"):
            shutil.rmtree(child) if child.is_dir() else child.unlink()
