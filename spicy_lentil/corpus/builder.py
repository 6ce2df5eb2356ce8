"""Building a corpus index (its files are described in `format`): shards encoded one at a time (or on a Ray
cluster) and written atomically, a resumable manifest, and the BM25 index over all documents."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch
from tqdm.auto import tqdm

from ..errors import DataError, check_count
from ..io import Rejects, file_sha256, iter_jsonl_documents
from ..network.encoder import Encoder
from ..slots import Slot, Slotter
from .first_stage import bm25_tokenize
from .format import EMBEDDINGS, MANIFEST, SHARD_NAME, index_settings, read_manifest
from .index import CorpusIndex
from .token_codec import FILE as CODEC_FILE
from .token_codec import CodecSpec, TokenCodec


def document_slots(slotter: Slotter, document: dict) -> tuple[list[Slot], bool]:
    """A document's slots: its own sentence split when it ships one that matches its text, else the slotter's."""
    if document.get("sentences"):
        known = slotter.split_known(document["text"], document["sentences"])
        if known is not None:
            return known
    return slotter.split(document["text"])


def build_index(
    corpus: str | Path,
    folder: str | Path,
    encoder: Encoder,
    slotter: Slotter,
    shard_size: int = 1000,
    resume: bool = False,
    rejects: Rejects | None = None,
    show_progress_bar: bool = True,
    encode_shards: Callable[[Iterator[tuple[str, list[dict]]]], Iterator[tuple[str, list[dict], dict]]] | None = None,
    token_codec: CodecSpec | None = CodecSpec(),
) -> CorpusIndex:
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
            does, in any order (`spicy_lentil.frontends.distributed` encodes them on a Ray cluster); None
            encodes them here, one at a time.
        token_codec: how token vectors are compressed; None stores them exact (float16, with float32
            sentence and document embeddings: the same scores as scoring the text itself, at several
            times the size; BENCHMARKS.md, "Index cost"). The codec is trained on the corpus's first
            shard (waited for when shards arrive out of order); a first shard too small to train it
            leaves the index exact.

    Raises:
        DataError: the corpus holds no document to index (empty, or every row rejected); what the build
            wrote is removed.
    """
    folder = Path(folder)
    corpus = Path(corpus)
    check_count(shard_size, "shard_size")
    if token_codec is not None:
        token_codec.check(encoder.dim)  # before anything is encoded
    if not corpus.is_file():
        raise FileNotFoundError(f"corpus file not found: {corpus}")
    settings = index_settings(encoder, slotter)
    wanted = {
        **settings,
        "corpus_sha256": file_sha256(corpus),
        "shard_size": shard_size,
        "token_codec": token_codec.to_dict() if token_codec else None,
    }
    manifest = read_manifest(folder)
    same = manifest is not None and all(manifest.get(k) == v for k, v in wanted.items()) and _names_shards(manifest)
    if same and manifest.get("complete"):
        return CorpusIndex.load(folder)
    if not (same and resume):
        _clear(folder)
        # `compressed` stays None until the first shard arrives and decides it (see `token_codec`).
        manifest = {**wanted, "corpus": str(corpus.resolve()), "shards": [], "complete": False, "compressed": None}
        _write_manifest(folder, manifest)
    codec = TokenCodec.load(folder) if manifest.get("compressed") else None
    done = {s["name"] for s in manifest["shards"]}
    started = time.perf_counter()
    rejects = rejects or Rejects()
    progress = tqdm(desc="indexing", unit="doc", disable=not show_progress_bar)

    def pending(handle) -> Iterator[tuple[str, list[dict]]]:
        for number, batch in enumerate(_batches(iter_jsonl_documents(handle, str(corpus), rejects), shard_size)):
            name = shard_name(number)
            if name in done:
                progress.update(len(batch))
            else:
                yield name, batch

    def encode_here(shards: Iterator[tuple[str, list[dict]]]) -> Iterator[tuple[str, list[dict], dict]]:
        for name, docs in shards:
            yield (name, *encode_shard(docs, encoder, slotter))

    held = []  # shards that arrived (from Ray) before the first, which trains the codec: every build gets one codec
    with open(corpus, "rb") as handle:  # decoded line by line: one bad byte costs its row, not the build
        for shard in (encode_shards or encode_here)(pending(handle)):
            if manifest["compressed"] is None:  # nothing is saved yet, so the first shard is still to come
                if shard[0] != FIRST_SHARD:
                    held.append(shard)
                    continue
                codec = TokenCodec.train(shard[2]["tokens"], token_codec) if token_codec else None
                if codec is not None:
                    codec.save(folder)
                manifest["compressed"] = codec is not None
                _write_manifest(folder, manifest)
            for name, rows, arrays in [*held, shard]:
                stats = save_shard(folder / name, rows, arrays, codec)
                # Shards encoded elsewhere may arrive out of order; the manifest lists them in corpus order.
                entries = manifest["shards"] + [{"name": name, **stats}]
                manifest["shards"] = sorted(entries, key=lambda s: int(s["name"].split("-")[1]))
                _write_manifest(folder, manifest)
                progress.update(len(rows))
            held = []
    progress.close()
    if not manifest["shards"]:
        # An index of nothing would only be a half-built folder that `search` sends back to `index --resume`.
        _clear(folder)
        if not any(folder.iterdir()):
            folder.rmdir()
        raise DataError(
            f"{corpus}: no documents to index"
            + (f" (every row was rejected: {rejects.count})" if rejects.count else " (the file holds no rows)")
        )
    _build_bm25(folder, manifest)
    manifest["complete"] = True
    manifest["rejected_rows"] = rejects.count
    manifest["build_seconds"] = round(manifest.get("build_seconds", 0.0) + time.perf_counter() - started, 1)
    _write_manifest(folder, manifest)
    return CorpusIndex.load(folder)


def shard_name(number: int) -> str:
    return f"shard-{number:05d}"


FIRST_SHARD = shard_name(0)


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
    encodings, title_encodings = everything[: len(slot_texts)], iter(everything[len(slot_texts) :])
    dim = encoder.dim
    doc_slots = _offsets([len(slots) for slots, _ in split])
    slot_embeddings = (
        torch.stack([e.embedding for e in encodings]).numpy() if encodings else np.zeros((0, dim), np.float32)
    )
    title_embeddings = np.zeros((len(docs), dim), np.float32)
    doc_embeddings = np.zeros((len(docs), dim), np.float32)
    for row, doc in enumerate(docs):
        parts = [slot_embeddings[doc_slots[row] : doc_slots[row + 1]]]
        if doc.get("title"):
            title_embeddings[row] = next(title_encodings).embedding.numpy()
            parts.append(title_embeddings[row : row + 1])
        stacked = np.concatenate(parts)
        if len(stacked):
            mean = stacked.mean(axis=0)
            doc_embeddings[row] = mean / max(float(np.linalg.norm(mean)), 1e-12)
    token_counts = [e.tokens.shape[0] for e in encodings]
    arrays = {
        "doc_slots": doc_slots,
        "slot_embeddings": slot_embeddings.astype(np.float32),
        "slot_tokens": _offsets(token_counts),
        "tokens": torch.cat([e.tokens for e in encodings]).numpy() if encodings else np.zeros((0, dim), np.float16),
        "token_ids": (
            torch.cat([e.token_ids for e in encodings]).numpy().astype(np.int32) if encodings else np.zeros(0, np.int32)
        ),
        "doc_embeddings": doc_embeddings,
        "title_embeddings": title_embeddings,
    }
    return [_document_row(doc, slots, truncated) for doc, (slots, truncated) in zip(docs, split)], arrays


def _document_row(doc: dict, slots: list[Slot], truncated: bool) -> dict:
    """A document's `docs.jsonl` row."""
    spans = [[s.start, s.end] for s in slots]
    return {"_id": doc["_id"], "title": doc.get("title"), "text": doc["text"], "spans": spans, "truncated": truncated}


def _offsets(counts) -> np.ndarray:
    """(len(counts) + 1,) int64 start offsets of consecutive runs of the given lengths."""
    return np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)


def stored_encodings(
    source: CorpusIndex, source_id: Callable[[dict], str] = lambda doc: doc["_id"]
) -> Callable[[Iterator[tuple[str, list[dict]]]], Iterator[tuple[str, list[dict], dict]]]:
    """An `encode_shards` for `build_index` that reads each document's encodings from another index of the
    same texts instead of running the encoder: an exact index compressed, or a large corpus assembled
    from copies of a small one (`source_id` names the source document of each row).

    Raises:
        DataError: a row's source document is not in `source`, or its text differs.
    """

    def encode_shards(shards: Iterator[tuple[str, list[dict]]]) -> Iterator[tuple[str, list[dict], dict]]:
        for name, docs in shards:
            positions = []
            for doc in docs:
                position = source.position.get(source_id(doc))
                if position is None or source.document(position)["text"] != doc["text"]:
                    raise DataError(f"document {doc['_id']!r}: no document of the same text in {source.folder}")
                positions.append(position)
            batch = source.document_batch(positions)
            slot_counts, token_counts = batch.slot_counts.numpy(), batch.token_counts.numpy()
            slot_lengths = np.bincount(
                np.repeat(np.cumsum(slot_counts) - slot_counts, token_counts) + batch.token_slot.numpy(),
                minlength=int(slot_counts.sum()),
            )
            titles = [source.title_encoding(p) for p in positions]
            dim = batch.slots.shape[1]
            arrays = {
                "doc_slots": _offsets(slot_counts),
                "slot_embeddings": batch.slots.numpy(),
                "slot_tokens": _offsets(slot_lengths),
                "tokens": batch.tokens.numpy(),
                "token_ids": batch.token_ids.numpy().astype(np.int32),
                "doc_embeddings": source.doc_embeddings()[positions],
                "title_embeddings": np.stack(
                    [t.embedding.numpy() if t is not None else np.zeros(dim, np.float32) for t in titles]
                ).reshape(len(docs), dim),
            }
            rows = [_document_row(doc, *source.slots(position)) for doc, position in zip(docs, positions)]
            yield name, rows, arrays

    return encode_shards


def save_shard(folder: Path, rows: list[dict], arrays: dict[str, np.ndarray], codec: TokenCodec | None) -> dict:
    """Writes a shard folder atomically, compressed by `codec` (or exact without one); returns its
    manifest entry's counts."""
    stored = dict(arrays)
    ids = arrays["token_ids"]
    if not len(ids) or (ids.min() >= np.iinfo(np.int16).min and ids.max() <= np.iinfo(np.int16).max):
        stored["token_ids"] = ids.astype(np.int16)
    if codec is not None:
        stored.update({name: arrays[name].astype(np.float16) for name in EMBEDDINGS})
        stored["token_codes"] = codec.encode(stored.pop("tokens"))
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    with open(tmp / "docs.jsonl", "w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    for name, array in stored.items():
        np.save(tmp / f"{name}.npy", array, allow_pickle=False)
    shutil.rmtree(folder, ignore_errors=True)
    os.replace(tmp, folder)  # a shard exists whole or not at all
    return {
        "docs": len(rows),
        "slots": int(arrays["slot_embeddings"].shape[0]),
        "tokens": int(arrays["tokens"].shape[0]),
    }


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


def _names_shards(manifest: dict) -> bool:
    """Whether the manifest lists shards as `build` writes them (else a resumed build starts over)."""
    shards = manifest.get("shards")
    return isinstance(shards, list) and all(
        isinstance(s, dict) and isinstance(s.get("name"), str) and SHARD_NAME.fullmatch(s["name"]) for s in shards
    )


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
        if child.name.startswith("shard-") or child.name in ("bm25", CODEC_FILE, MANIFEST, MANIFEST + ".tmp"):
            shutil.rmtree(child) if child.is_dir() else child.unlink()


def cached_index(
    corpus: str | Path,
    encoder: Encoder,
    slotter: Slotter,
    cache_dir: str | Path = "cache",
    show_progress_bar: bool = True,
) -> CorpusIndex:
    """The cached index of a corpus file under `cache_dir`: built, rebuilt when stale, resumed when cut."""
    folder = cache_folder(corpus, encoder, cache_dir)
    return build_index(corpus, folder, encoder, slotter, resume=True, show_progress_bar=show_progress_bar)


def cache_folder(corpus: str | Path, encoder: Encoder, cache_dir: str | Path = "cache", kind: str = "index") -> Path:
    """Where `cached_index` keeps the index of a corpus file for an encoder (`kind` names other variants)."""
    corpus = Path(corpus).resolve()
    key = hashlib.sha256(f"{corpus}|{encoder.name}|{encoder.weights_digest}".encode("utf-8")).hexdigest()[:12]
    return Path(cache_dir) / f"{kind}-{corpus.parent.name}-{key}"
