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

This module reads an index (`CorpusIndex`); `index_builder` writes one. Building holds one shard
in memory at a time, and `resume` skips the shards already written. A manifest that names another
corpus, encoder or slotter setting makes the index stale: it is rebuilt (or, when opened for
search, refused), never silently used.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Sequence

import numpy as np
import torch

from .batching import DocumentBatch, DocumentEncoding
from .encoder import Encoder, Encoding
from .errors import DamagedFileError, SpicyLentilError
from .io import file_sha256
from .slots import Slot, Slotter

if TYPE_CHECKING:
    from .io import Rejects

FORMAT_VERSION = 2
MANIFEST = "manifest.json"
SHARD_NAME = re.compile(r"shard-\d{5}")  # what `build` names shards; a manifest naming anything else is not followed
ARRAYS = ("doc_slots", "slot_embeddings", "slot_tokens", "tokens", "token_ids", "doc_embeddings", "title_embeddings")


class StaleIndexError(SpicyLentilError):
    """The index on disk was built from another corpus, encoder or slotter setting."""


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
                    if not (
                        isinstance(doc, dict)
                        and isinstance(doc.get("_id"), str)
                        and isinstance(doc.get("text"), str)
                        and isinstance(doc.get("spans"), list)
                    ):
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
                    f"{folder / name}.npy: {error or 'empty file'}; the index is damaged, rebuild it"
                ) from error
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
            out[...] = source[start : start + out.shape[0]]
            return
        if out.nbytes:
            if name not in self.handles:
                self.handles[name] = open(self.folder / f"{name}.npy", "rb", buffering=0)  # closed with the shard
            row_bytes = out.nbytes // out.shape[0]
            read = os.preadv(
                self.handles[name].fileno(), [memoryview(out).cast("B")], self.offsets[name] + start * row_bytes
            )
            if read != out.nbytes:
                raise OSError(
                    f"{self.folder / name}.npy: short read ({read} of {out.nbytes} bytes); the index is damaged"
                )


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

    # ---- building, loading and checking ------------------------------------------------------

    @classmethod
    def build(
        cls,
        corpus: str | Path,
        folder: str | Path,
        encoder: Encoder,
        slotter: Slotter,
        shard_size: int = 1000,
        resume: bool = False,
        rejects: "Rejects | None" = None,
        show_progress_bar: bool = True,
        encode_shards=None,
    ) -> "CorpusIndex":
        """Indexes a JSONL corpus into `folder` and opens it (`index_builder.build_index` documents the arguments)."""
        from .index_builder import build_index

        return build_index(
            corpus, folder, encoder, slotter, shard_size, resume, rejects, show_progress_bar, encode_shards
        )

    @classmethod
    def load(cls, folder: str | Path, encoder: Encoder | None = None, slotter: Slotter | None = None) -> "CorpusIndex":
        """Opens a complete index; with `encoder`/`slotter`, refuses one built with other settings.

        Raises:
            StaleIndexError: incomplete, or built with another encoder or slotter setting.
        """
        folder = Path(folder)
        manifest = read_manifest(folder)
        if manifest is None:
            if (folder / MANIFEST).exists():
                raise DamagedFileError(f"{folder / MANIFEST} is not a readable JSON manifest; rebuild the index")
            raise StaleIndexError(f"{folder} is not a Spicy Lentil index (no {MANIFEST})")
        _check_manifest(folder, manifest)
        if not manifest.get("complete"):
            raise StaleIndexError(f"{folder}: the index build did not finish; run `spicy-lentil index ... --resume`")
        if manifest.get("format") != FORMAT_VERSION:
            raise StaleIndexError(
                f"{folder}: index format {manifest.get('format')}, this version reads {FORMAT_VERSION}"
            )
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
    def for_corpus(
        cls,
        corpus: str | Path,
        encoder: Encoder,
        slotter: Slotter,
        cache_dir: str | Path = "cache",
        show_progress_bar: bool = True,
    ) -> "CorpusIndex":
        """The cached index of a corpus file under `cache_dir`: built, rebuilt when stale, resumed when cut."""
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
        return DocumentEncoding(
            slots=batch.slots, tokens=batch.tokens, token_ids=batch.token_ids, token_slot=batch.token_slot
        )

    def document_batch(self, positions: Sequence[int]) -> DocumentBatch:
        """Stored encodings of several documents, packed in the given order: what reranking reads
        instead of running the encoder. Each document's rows are read straight into place."""
        spans = []  # per document: its shard, its slots [first, last) and their token offsets
        for i in positions:
            s, j = self._locate[i]
            shard = self._shards[s]
            first, last = int(shard.doc_slots[j]), int(shard.doc_slots[j + 1])
            spans.append((shard, first, last, shard.slot_tokens[first : last + 1]))
        slot_counts = np.array([last - first for _, first, last, _ in spans], dtype=np.int64)
        token_counts = np.array([bounds[-1] - bounds[0] for *_, bounds in spans], dtype=np.int64)
        dim = self._shards[0].slot_embeddings.shape[1] if self._shards else 0
        slots = np.empty((int(slot_counts.sum()), dim), dtype=np.float32)
        tokens = np.empty((int(token_counts.sum()), dim), dtype=np.float16)
        token_ids = np.empty(tokens.shape[0], dtype=np.int32)
        slot_lengths = np.empty(slots.shape[0], dtype=np.int64)  # tokens per slot
        slot_at = token_at = 0
        for (shard, first, last, bounds), n_tokens in zip(spans, token_counts.tolist()):
            shard.read("slot_embeddings", first, slots[slot_at : slot_at + last - first])
            shard.read("tokens", int(bounds[0]), tokens[token_at : token_at + n_tokens])
            shard.read("token_ids", int(bounds[0]), token_ids[token_at : token_at + n_tokens])
            slot_lengths[slot_at : slot_at + last - first] = np.diff(bounds)
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
        return Encoding(
            embedding, torch.zeros(0, embedding.shape[0], dtype=torch.float16), torch.zeros(0, dtype=torch.long)
        )

    def doc_embeddings(self) -> np.ndarray:
        """(docs, dim) document embeddings, all shards (kept in memory after the first call)."""
        if self._doc_matrix is None:
            self._doc_matrix = np.concatenate([np.asarray(shard.doc_embeddings) for shard in self._shards])
        return self._doc_matrix

    def shard_slots(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Per shard, in corpus order: its (slots, dim) slot embeddings and (docs + 1,) slot offsets."""
        for shard in self._shards:
            yield np.asarray(shard.slot_embeddings), np.asarray(shard.doc_slots)

    def bm25(self):
        """The corpus's `bm25s.BM25` retriever over "title text" (loaded on the first call)."""
        import bm25s

        if self._bm25 is None:
            try:
                self._bm25 = bm25s.BM25.load(str(self.folder / "bm25"), mmap=False, show_progress=False)
            except (OSError, ValueError, EOFError, KeyError) as error:
                raise DamagedFileError(f"{self.folder / 'bm25'}: {error}; the index is damaged, rebuild it") from error
        return self._bm25


@dataclass
class IndexedDocuments:
    """Documents of an index, by position, as a `scheduling.DocumentSource`: reranked from stored encodings."""

    index: CorpusIndex
    positions: list[int]

    def __len__(self) -> int:
        return len(self.positions)

    def token_count(self, row: int) -> int:
        return self.index.token_count(self.positions[row])

    def batch(self, rows: list[int]) -> DocumentBatch:
        return self.index.document_batch([self.positions[r] for r in rows])

    def title(self, row: int) -> Encoding | None:
        return self.index.title_encoding(self.positions[row])

    def document_id(self, row: int) -> str | None:
        return self.index.doc_ids[self.positions[row]]


class OpenedIndexes:
    """Indexes opened by folder, each kept with the manifest bytes it was opened at: reopening the
    same folder is free, and a rebuilt index (new manifest) is opened afresh. Shared by threads."""

    def __init__(self) -> None:
        self._indexes: dict[Path, tuple[bytes | None, CorpusIndex]] = {}
        self._lock = threading.Lock()

    def open(self, folder: str | Path, encoder: Encoder, slotter: Slotter) -> CorpusIndex:
        """The index in `folder`, refused (`StaleIndexError`) when built for another encoder or slotter."""
        folder = Path(folder).resolve()
        try:
            manifest = (folder / MANIFEST).read_bytes()
        except OSError:
            manifest = None  # CorpusIndex.load names what is missing
        with self._lock:
            kept = self._indexes.get(folder)
            if manifest is not None and kept is not None and kept[0] == manifest:
                return kept[1]
            index = CorpusIndex.load(folder, encoder, slotter)
            self._indexes[folder] = (manifest, index)
            return index


def read_manifest(folder: Path) -> dict | None:
    try:
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return manifest if isinstance(manifest, dict) else None


def _check_manifest(folder: Path, manifest: dict) -> None:
    """A complete manifest lists shards by the names `build` gives them, each a folder inside the index."""
    shards = manifest.get("shards")
    if not isinstance(shards, list) or not all(isinstance(s, dict) and isinstance(s.get("name"), str) for s in shards):
        raise DamagedFileError(
            f"{folder / MANIFEST}: 'shards' must be a list of {{\"name\": ...}} objects; rebuild the index"
        )
    for shard in shards:
        if not SHARD_NAME.fullmatch(shard["name"]):
            raise DamagedFileError(f"{folder / MANIFEST}: shard name {shard['name']!r} is not one this index writes")
        if not (folder / shard["name"]).is_dir():
            raise DamagedFileError(f"{folder / shard['name']} is missing; rebuild the index")


def _check_shard(folder: Path, docs: list[dict], arrays: dict) -> None:
    """The shard's arrays agree with each other and with its documents (a damaged file would misread silently)."""
    slots, tokens = arrays["slot_embeddings"].shape[0], arrays["tokens"].shape[0]
    expected = {
        "doc_slots": (len(docs) + 1,),
        "slot_tokens": (slots + 1,),
        "token_ids": (tokens,),
        "doc_embeddings": (len(docs),),
        "title_embeddings": (len(docs),),
    }
    for name, shape in expected.items():
        if arrays[name].shape[: len(shape)] != shape:
            raise DamagedFileError(
                f"{folder / name}.npy has shape {arrays[name].shape}, expected {shape}; rebuild the index"
            )
    if int(arrays["doc_slots"][-1]) != slots or int(arrays["slot_tokens"][-1]) != tokens:
        raise DamagedFileError(f"{folder}: slot and token offsets do not match the stored arrays; rebuild the index")
