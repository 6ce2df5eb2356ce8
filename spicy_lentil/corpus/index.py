"""The corpus index, read: slots, slot and token embeddings, document embeddings and BM25, built once on disk
(`format` says what each file holds, `builder` writes them).

A compact index (the default) stores compressed token vectors, an exact one float16 vectors: the exact one
gives the same scores as scoring the text itself; BENCHMARKS.md ("Index cost") measures the compact one's
bytes and scores against it.

Opening an index checks its manifest: one built for another encoder or slotter setting is refused as
stale (`StaleIndexError`), never silently used, and one of another format is refused with the command
that rebuilds it.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch

from ..errors import DamagedFileError, SpicyLentilError
from ..io import file_sha256
from ..network.batching import DocumentBatch, DocumentEncoding
from ..network.encoder import Encoder, Encoding
from ..slots import Slot, Slotter
from .format import FORMAT_VERSION, MANIFEST, Shard, check_manifest, index_settings, read_manifest
from .token_codec import TokenCodec


class StaleIndexError(SpicyLentilError):
    """The index on disk was built from another corpus, encoder or slotter setting."""


class CorpusIndex:
    """A corpus indexed once for first-stage retrieval and encoder-free reranking."""

    def __init__(self, folder: Path, manifest: dict, shards: list[Shard], codec: TokenCodec | None) -> None:
        self.folder = folder
        self.manifest = manifest
        self._shards = shards
        self._codec = codec  # None: token vectors are stored exact
        self._slot_matrices: list[np.ndarray] | None = None
        self._locate = [(s, j) for s, shard in enumerate(shards) for j in range(len(shard.docs))]
        self._doc_shard = np.array([s for s, _ in self._locate], dtype=np.int64)  # _locate as arrays, for
        self._doc_local = np.array([j for _, j in self._locate], dtype=np.int64)  # vectorised lookups
        self.doc_ids = [doc["_id"] for shard in shards for doc in shard.docs]
        self.position = {doc_id: i for i, doc_id in enumerate(self.doc_ids)}
        self._bm25 = None
        self._doc_matrix: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.doc_ids)

    # ---- building, loading and checking ------------------------------------------------------

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
        check_manifest(folder, manifest)
        if not manifest.get("complete"):
            raise StaleIndexError(f"{folder}: the index build did not finish; run `spicy-lentil index ... --resume`")
        if manifest.get("format") != FORMAT_VERSION:
            corpus = manifest.get("corpus", "CORPUS.jsonl")
            raise StaleIndexError(
                f"{folder}: index format {manifest.get('format')}, this version reads {FORMAT_VERSION}; "
                f"rebuild it with `spicy-lentil index {corpus} --output {folder}`"
            )
        if encoder is not None and slotter is not None:
            expected = index_settings(encoder, slotter)
            diff = sorted(k for k, v in expected.items() if manifest.get(k) != v)
            if diff:
                raise StaleIndexError(
                    f"{folder} was built with other settings ({', '.join(diff)}: "
                    f"{[manifest.get(k) for k in diff]} vs {[expected[k] for k in diff]}); rebuild it for this model"
                )
        compressed = manifest.get("compressed")
        if not isinstance(compressed, bool):
            raise DamagedFileError(f"{folder / MANIFEST}: 'compressed' must be true or false; rebuild the index")
        codec = TokenCodec.load(folder) if compressed else None
        shards = [Shard.load(folder / s["name"], compressed) for s in manifest["shards"]]
        widths = {
            "tokens": codec.code_size if codec else manifest.get("embedding_dim"),
            "slot_embeddings": manifest.get("embedding_dim"),
        }
        for shard in shards:
            for name, width in widths.items():
                if getattr(shard, name).shape[1:] != (width,):
                    raise DamagedFileError(
                        f"{shard.files[name]} rows are {getattr(shard, name).shape[1:]}, expected ({width},); "
                        "rebuild the index"
                    )
        return cls(folder, manifest, shards, codec)

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
        instead of running the encoder. Compressed token vectors are decoded here, for these documents only."""
        slot_parts, token_parts, id_parts, slot_counts, slot_lengths = [], [], [], [], []
        for i in positions:
            s, j = self._locate[i]
            shard = self._shards[s]
            first, last = int(shard.doc_slots[j]), int(shard.doc_slots[j + 1])
            bounds = shard.slot_tokens[first : last + 1]
            slot_parts.append(shard.rows("slot_embeddings", first, last))
            token_parts.append(shard.rows("tokens", int(bounds[0]), int(bounds[-1])))
            id_parts.append(shard.rows("token_ids", int(bounds[0]), int(bounds[-1])))
            slot_counts.append(last - first)
            slot_lengths.append(np.diff(bounds))
        dim = int(self.manifest["embedding_dim"])
        slots = np.concatenate(slot_parts, dtype=np.float32) if slot_parts else np.zeros((0, dim), np.float32)
        stored = np.concatenate(token_parts) if token_parts else np.zeros((0, dim), np.float16)
        tokens = self._codec.decode(stored) if self._codec is not None else torch.from_numpy(stored)
        token_ids = np.concatenate(id_parts, dtype=np.int64) if id_parts else np.zeros(0, np.int64)
        slot_counts = np.array(slot_counts, dtype=np.int64)
        lengths = np.concatenate(slot_lengths) if slot_lengths else np.zeros(0, np.int64)
        slot_in_document = np.arange(slots.shape[0]) - np.repeat(np.cumsum(slot_counts) - slot_counts, slot_counts)
        return DocumentBatch(
            slots=torch.from_numpy(slots),
            slot_counts=torch.from_numpy(slot_counts),
            tokens=tokens,
            token_counts=torch.from_numpy(np.array([len(p) for p in token_parts], dtype=np.int64)),
            token_ids=torch.from_numpy(token_ids),
            token_slot=torch.from_numpy(np.repeat(slot_in_document, lengths)),
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
            self._doc_matrix = np.concatenate([shard.doc_embeddings for shard in self._shards], dtype=np.float32)
        return self._doc_matrix

    def shard_slots(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Per shard, in corpus order: its (slots, dim) float32 slot embeddings and (docs + 1,) slot offsets.

        A compressed index stores them as float16, which numpy multiplies without BLAS: they are
        converted once, on the first search, and kept in memory (4 bytes per dimension per slot).
        """
        if self._slot_matrices is None:
            self._slot_matrices = [np.asarray(shard.slot_embeddings, dtype=np.float32) for shard in self._shards]
        for matrix, shard in zip(self._slot_matrices, self._shards):
            yield matrix, np.asarray(shard.doc_slots)

    def slot_matrix(self, positions: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """The given documents' (slots, dim) float32 slot embeddings, packed in order, and their
        (len(positions) + 1,) slot offsets: a few thousand documents' rows, gathered shard by shard."""
        positions = np.asarray(positions, dtype=np.int64)
        shard_of, local = self._doc_shard[positions], self._doc_local[positions]
        counts = np.zeros(len(positions), dtype=np.int64)
        for s in np.unique(shard_of):
            mine = shard_of == s
            doc_slots = self._shards[s].doc_slots
            counts[mine] = doc_slots[local[mine] + 1] - doc_slots[local[mine]]
        offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        matrix = np.empty((int(offsets[-1]), int(self.manifest["embedding_dim"])), dtype=np.float32)
        for s in np.unique(shard_of):
            mine = np.flatnonzero(shard_of == s)
            source = _ranges(self._shards[s].doc_slots[local[mine]], counts[mine])
            matrix[_ranges(offsets[mine], counts[mine])] = self._shards[s].slot_embeddings[source]
        return matrix, offsets

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


def _ranges(starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """The concatenated ranges [start, start + count) as one index array."""
    ends = np.cumsum(counts)
    return np.repeat(starts - (ends - counts), counts) + np.arange(int(ends[-1]) if len(ends) else 0)
