"""Batch scheduling: which documents run through the model together.

A `DocumentSource` is any set of documents whose slots are already encoded, addressed by row:
documents encoded for one call (`EncodedDocuments`) or documents stored in a corpus index
(`index.IndexedDocuments`). `schedule` deals its non-empty rows into balanced batches.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Protocol, Sequence

from ..runtime import batch_workers
from .batching import DocumentBatch, DocumentEncoding
from .encoder import Encoding

# Most tokens in one model batch. The batch's float32 token tensor then stays under glibc's 32 MB
# mmap ceiling (runtime.configure), so its memory is reused from batch to batch instead of mapped
# afresh, one page fault per 4 KiB, for each long batch.
MAX_BATCH_TOKENS = 16384


class DocumentSource(Protocol):
    """Documents with encoded slots, addressed by row (0 .. len - 1)."""

    def __len__(self) -> int: ...

    def token_count(self, row: int) -> int:
        """The row's token count; 0 for an empty document, which gets the neutral result without the model."""
        ...

    def batch(self, rows: list[int]) -> DocumentBatch:
        """The rows' slot encodings, packed."""
        ...

    def title(self, row: int) -> Encoding | None:
        """The row's title encoding, or None."""
        ...

    def document_id(self, row: int) -> str | None:
        """The row's "_id", or None."""
        ...


@dataclass
class EncodedDocuments:
    """Documents encoded for one call: per row, its packed slots (None when empty), title and id."""

    encodings: Sequence[DocumentEncoding | None]
    titles: Sequence[Encoding | None]
    ids: Sequence[str | None]

    def __len__(self) -> int:
        return len(self.encodings)

    def token_count(self, row: int) -> int:
        encoding = self.encodings[row]
        return encoding.tokens.shape[0] if encoding is not None else 0

    def batch(self, rows: list[int]) -> DocumentBatch:
        return DocumentBatch.pack([self.encodings[r] for r in rows])

    def title(self, row: int) -> Encoding | None:
        return self.titles[row]

    def document_id(self, row: int) -> str | None:
        return self.ids[row]


def schedule(
    source: DocumentSource, batch_size: int, max_tokens: int = MAX_BATCH_TOKENS, workers: int | None = None
) -> list[list[int]]:
    """The source's non-empty rows in balanced batches (`balanced_batches`); `workers` defaults to the batch workers."""
    token_counts = [source.token_count(r) for r in range(len(source))]  # read once: dealing reads them again
    order = sorted((r for r in range(len(source)) if token_counts[r] > 0), key=token_counts.__getitem__)
    return balanced_batches(order, token_counts.__getitem__, batch_size, max_tokens, workers or batch_workers())


def balanced_batches(
    order: list[int], tokens: Callable[[int], int], batch_size: int, max_tokens: int, workers: int
) -> list[list[int]]:
    """Deals rows sorted by token count out to the fewest batches of at most `batch_size` rows and
    `max_tokens` tokens, a multiple of `workers` of them; a row over `max_tokens` goes alone.

    Dealt in turn, every batch gets rows of every length, so batches running side by side finish
    together; and fewer, larger batches pay the per-batch cost (a few hundred operator calls, most
    of them Python holding the GIL the other worker also needs) fewer times: a search's 100
    candidates run as one batch per worker.
    """
    alone = [[r] for r in order if tokens(r) > max_tokens]
    order = [r for r in order if tokens(r) <= max_tokens]
    if not order:
        return alone
    n = max(-(-len(order) // batch_size), -(-sum(tokens(r) for r in order) // max_tokens))
    n = -(-n // workers) * workers
    while True:
        batches = [order[i::n] for i in range(min(n, len(order)))]
        if n >= len(order) or all(sum(tokens(r) for r in b) <= max_tokens for b in batches):
            return alone + batches
        n += 1
