"""Collation: from per-document encodings to the `PathwayInput` tensors the model reads.

Documents travel packed: a `DocumentEncoding` holds one document's slots, the token embeddings of
all its slots one after another and the slot each token belongs to; a `DocumentBatch` holds several
documents the same way. `collate` pads the slots of each row (a few per document) and keeps the
tokens packed (hundreds per document, and their counts vary several-fold), with a few tensor ops
and no Python loop over slots or tokens.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from torch.nn.utils.rnn import pad_sequence

from ..pathways.base import PathwayInput, real_slots
from .encoder import Encoding


@dataclass
class DocumentEncoding:
    """One document's slot encodings, packed."""

    slots: torch.Tensor  # (slots, dim) float32 L2-normalised slot embeddings
    tokens: torch.Tensor  # (tokens, dim) float16 contextual token embeddings of all slots, in slot order
    token_ids: torch.Tensor  # (tokens,) int64 tokenizer ids
    token_slot: torch.Tensor  # (tokens,) int64 the slot each token belongs to

    def __len__(self) -> int:
        return self.slots.shape[0]

    @classmethod
    def pack(cls, encodings: Sequence[Encoding]) -> "DocumentEncoding":
        """Packs the encodings of a document's slots, in slot order."""
        if not encodings:
            raise ValueError("DocumentEncoding.pack: a document needs at least one slot")
        lengths = np.array([e.tokens.shape[0] for e in encodings], dtype=np.int64)
        return cls(
            slots=torch.stack([e.embedding for e in encodings]).float(),
            tokens=torch.cat([e.tokens for e in encodings]),
            token_ids=torch.cat([e.token_ids for e in encodings]).long(),
            token_slot=torch.from_numpy(np.repeat(np.arange(len(encodings), dtype=np.int64), lengths)),
        )


@dataclass
class DocumentBatch:
    """Several documents' slot encodings, packed one document after another."""

    slots: torch.Tensor  # (slots, dim) slot embeddings of all documents
    slot_counts: torch.Tensor  # (documents,) int64 slots per document
    tokens: torch.Tensor  # (tokens, dim) token embeddings (float16 as stored) of all slots of all documents
    token_counts: torch.Tensor  # (documents,) int64 tokens per document
    token_ids: torch.Tensor  # (tokens,) int64 tokenizer ids
    token_slot: torch.Tensor  # (tokens,) int64 the slot each token belongs to, within its document

    def __len__(self) -> int:
        return self.slot_counts.shape[0]

    @classmethod
    def pack(cls, documents: Sequence[DocumentEncoding | Sequence[Encoding]]) -> "DocumentBatch":
        """Packs documents given as `DocumentEncoding`s or as lists of their slots' encodings."""
        documents = [d if isinstance(d, DocumentEncoding) else DocumentEncoding.pack(d) for d in documents]
        return cls(
            slots=torch.cat([d.slots for d in documents]),
            slot_counts=torch.tensor([len(d) for d in documents], dtype=torch.long),
            tokens=torch.cat([d.tokens for d in documents]),
            token_counts=torch.tensor([d.tokens.shape[0] for d in documents], dtype=torch.long),
            token_ids=torch.cat([d.token_ids for d in documents]),
            token_slot=torch.cat([d.token_slot for d in documents]),
        )


def collate(
    queries: Sequence[Encoding],
    documents: DocumentBatch | Sequence[DocumentEncoding | Sequence[Encoding]],
    titles: Sequence[Encoding | None],
    special_ids: Sequence[int],
) -> PathwayInput:
    """Builds one `PathwayInput` from a batch of (query, document) pairs and the documents' titles.

    Args:
        queries: one query encoding per row.
        documents: a `DocumentBatch`, or per row a `DocumentEncoding` or the list of its slot encodings.
            Every document needs at least one slot: empty documents are answered without the model.
        titles: per row, the title's encoding or None.
        special_ids: tokenizer ids that get id -1 (no lexical match on [CLS], [SEP], ...).
    """
    if not isinstance(documents, DocumentBatch):
        documents = DocumentBatch.pack(documents)
    if bool((documents.slot_counts == 0).any()):
        raise ValueError("collate: every document needs at least one slot")
    rows, dim = len(documents), queries[0].embedding.shape[0]
    special = torch.tensor(sorted(special_ids), dtype=torch.long)

    def ids(values: torch.Tensor) -> torch.Tensor:
        return torch.where(torch.isin(values, special), -1, values)

    # Same query on every row (one query, many documents): pad it once and expand.
    same_query = all(q is queries[0] for q in queries)
    distinct = queries[:1] if same_query else queries
    query_tokens = pad_sequence([q.tokens for q in distinct], batch_first=True).float()  # (queries, q_tokens, dim)
    query_ids = ids(pad_sequence([q.token_ids.long() for q in distinct], batch_first=True, padding_value=-1))
    query_token_mask = pad_sequence(
        [torch.ones(q.token_ids.shape[0], dtype=torch.bool) for q in distinct], batch_first=True
    )
    query = torch.stack([q.embedding for q in distinct]).float()
    if same_query:
        query, query_tokens = query.expand(rows, -1), query_tokens.expand(rows, -1, -1)
        query_ids, query_token_mask = query_ids.expand(rows, -1), query_token_mask.expand(rows, -1)

    slot_mask = torch.arange(int(documents.slot_counts.max())) < documents.slot_counts.unsqueeze(1)  # (batch, slots)
    slots = torch.zeros(slot_mask.numel(), dim)
    slots.index_copy_(0, real_slots(slot_mask), documents.slots.float())
    tokens = documents.tokens.float()  # (tokens, dim): the batch's one large tensor, converted in one pass
    # numpy's repeat: torch.repeat_interleave costs several times more on CPU
    token_row = torch.from_numpy(np.repeat(np.arange(rows, dtype=np.int64), documents.token_counts.numpy()))
    title_mask = torch.tensor([t is not None for t in titles], dtype=torch.bool)
    return PathwayInput(
        query=query,
        query_tokens=query_tokens,
        query_token_mask=query_token_mask,
        query_ids=query_ids,
        slots=slots.view(rows, -1, dim),  # (batch, slots, dim)
        slot_mask=slot_mask,
        tokens=tokens,
        token_ids=ids(documents.token_ids),
        token_row=token_row,
        token_slot=documents.token_slot,
        token_scale=1.0 / torch.linalg.vector_norm(tokens, dim=-1).clamp(min=1e-12),
        title=torch.stack([t.embedding.float() if t is not None else torch.zeros(dim) for t in titles]),
        title_mask=title_mask,
        shared_query=same_query,
    )
