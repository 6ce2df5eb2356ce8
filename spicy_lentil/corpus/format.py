"""The on-disk format of a corpus index: what each file holds, and the checks that refuse a damaged one.

Layout of an index folder (format 3):

    manifest.json            encoder, slotter settings, token codec, corpus hash, shards done, complete flag
    token_codec.npy          the trained faiss codec of the token vectors (`token_codec`); absent when exact
    shard-00000/             one folder per `shard_size` documents, written atomically
        docs.jsonl           {"_id", "title", "text", "spans": [[start, end], ...], "truncated"}
        doc_slots.npy        (docs + 1,) int64 offsets of each document's slots
        slot_embeddings.npy  (slots, dim) float16 (float32 in an exact index)
        slot_tokens.npy      (slots + 1,) int64 offsets of each slot's tokens
        token_codes.npy      (tokens, code_size) uint8 compressed contextual token embeddings, or
        tokens.npy           (tokens, dim) float16 the same, exact (an index built with no codec)
        token_ids.npy        (tokens,) int16 (int32 for a vocabulary past 32,767)
        doc_embeddings.npy   (docs, dim) float16 (float32 exact) normalised mean of the title and slot embeddings
        title_embeddings.npy (docs, dim) float16 (float32 exact) embedding of the title; zeros where there is none
    bm25/                    bm25s index over "title text" (no pickle)

`index` reads this format, `builder` writes it.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import DamagedFileError
from ..network.encoder import Encoder
from ..slots import Slotter

FORMAT_VERSION = 3
MANIFEST = "manifest.json"
# What the builder names shards; a manifest naming anything else is not followed.
SHARD_NAME = re.compile(r"shard-\d{5}")
EMBEDDINGS = ("slot_embeddings", "doc_embeddings", "title_embeddings")


def stored_dtypes(compressed: bool) -> dict[str, tuple]:
    """Every array of a shard, by file name, with the dtypes it may be stored in."""
    embedding = (np.float16,) if compressed else (np.float32,)
    return {
        "doc_slots": (np.int64,),
        "slot_tokens": (np.int64,),
        "token_ids": (np.int16, np.int32),
        **{name: embedding for name in EMBEDDINGS},
        **({"token_codes": (np.uint8,)} if compressed else {"tokens": (np.float16,)}),
    }


def index_settings(encoder: Encoder, slotter: Slotter) -> dict:
    return {
        "format": FORMAT_VERSION,
        "encoder": encoder.name,
        "encoder_weights": encoder.weights_digest,
        "embedding_dim": encoder.dim,
        "slotter": {"window_tokens": slotter.window_tokens, "stride": slotter.stride, "max_slots": slotter.max_slots},
    }


@dataclass
class Shard:
    """One shard folder, opened: its documents and memory-mapped arrays."""

    docs: list[dict]
    doc_slots: np.ndarray
    slot_embeddings: np.ndarray
    slot_tokens: np.ndarray
    tokens: np.ndarray  # (tokens, dim) float16 vectors, or (tokens, code_size) uint8 codes in a compressed index
    token_ids: np.ndarray
    doc_embeddings: np.ndarray
    title_embeddings: np.ndarray

    folder: Path
    offsets: dict  # array name -> byte offset of its data in the .npy file, for `read`
    files: dict  # array name -> its .npy file
    handles: dict = field(default_factory=dict, repr=False)  # array name -> open file, for `rows`

    @classmethod
    def load(cls, folder: Path, compressed: bool) -> "Shard":
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
        maps, files = {}, {}
        for stem, allowed in stored_dtypes(compressed).items():
            name = "tokens" if stem == "token_codes" else stem  # codes or vectors, the shard's `tokens` either way
            files[name] = folder / f"{stem}.npy"
            try:
                maps[name] = np.load(files[name], mmap_mode="r", allow_pickle=False)
            except (OSError, ValueError, EOFError) as error:
                raise DamagedFileError(
                    f"{files[name]}: {error or 'empty file'}; the index is damaged, rebuild it"
                ) from error
            if maps[name].dtype not in allowed:
                expected = " or ".join(np.dtype(t).name for t in allowed)
                raise DamagedFileError(
                    f"{files[name]} holds {maps[name].dtype}, expected {expected}; rebuild the index"
                )
        _check_shard(folder, docs, maps)
        # Plain ndarray views of the maps: slicing an np.memmap runs Python-level bookkeeping on every
        # slice, and a search slices a few hundred times.
        arrays = {name: array.view(np.ndarray) for name, array in maps.items()}
        offsets = {name: array.offset for name, array in maps.items()}
        return cls(docs=docs, folder=folder, offsets=offsets, files=files, **arrays)

    def rows(self, name: str, start: int, stop: int) -> np.ndarray:
        """Rows [start, stop) of one stored array, in its stored dtype."""
        source = getattr(self, name)
        out = np.empty((stop - start, *source.shape[1:]), dtype=source.dtype)
        self.read(name, start, out)
        return out

    def read(self, name: str, start: int, out: np.ndarray) -> None:
        """Reads rows [start, start + len(out)) of one stored array into `out` (of the stored dtype).

        Read with `pread` where the system has it: touching a memory map page by page faults once per
        4 KiB, which on virtual machines costs more than the copy itself.
        """
        source = getattr(self, name)
        if not hasattr(os, "preadv"):
            out[...] = source[start : start + out.shape[0]]
            return
        if out.nbytes:
            if name not in self.handles:
                self.handles[name] = open(self.files[name], "rb", buffering=0)  # closed with the shard
            row_bytes = out.nbytes // out.shape[0]
            read = os.preadv(
                self.handles[name].fileno(), [memoryview(out).cast("B")], self.offsets[name] + start * row_bytes
            )
            if read != out.nbytes:
                raise OSError(
                    f"{self.files[name]}: short read ({read} of {out.nbytes} bytes); the index is damaged"
                )


def read_manifest(folder: Path) -> dict | None:
    try:
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return manifest if isinstance(manifest, dict) else None


def check_manifest(folder: Path, manifest: dict) -> None:
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
