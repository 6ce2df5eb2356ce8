"""Collation: from per-document encodings to the `PathwayInput` tensors the model reads.

A document's slots travel packed (`DocumentEncoding`): the token embeddings of all its slots one
after another, with the slot each token belongs to. Padding every slot to the longest one in the
batch would multiply the work of the token-level pathways several times over (one long sentence
pads every other slot), and packed documents are padded to a batch with a few tensor ops instead
of a Python loop over slots.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from torch.nn.utils.rnn import pad_sequence

from pathways.base import PathwayInput

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


def collate(
    queries: Sequence[Encoding],
    documents: Sequence[DocumentEncoding | Sequence[Encoding]],
    titles: Sequence[Encoding | None],
    special_ids: Sequence[int],
) -> PathwayInput:
    """Builds one `PathwayInput` from a batch of (query, document, title) triples.

    Args:
        queries: one query encoding per row.
        documents: per row, a `DocumentEncoding` or the list of its slot encodings (packed here).
            Every document needs at least one slot: empty documents are answered without the model.
        titles: per row, the title's encoding or None.
        special_ids: tokenizer ids that get id -1 (no lexical match on [CLS], [SEP], ...).
    """
    documents = [d if isinstance(d, DocumentEncoding) else DocumentEncoding.pack(d) for d in documents]
    if any(len(doc) == 0 for doc in documents):
        raise ValueError("collate: every document needs at least one slot")
    dim = queries[0].embedding.shape[0]
    special = torch.tensor(sorted(special_ids), dtype=torch.long)

    def ids(padded: torch.Tensor) -> torch.Tensor:
        return torch.where(torch.isin(padded, special), -1, padded)

    # Same query on every row (one query, many documents): pad it once and expand.
    same_query = all(q is queries[0] for q in queries)
    distinct = queries[:1] if same_query else queries
    query_tokens = pad_sequence([q.tokens for q in distinct], batch_first=True).float()  # (queries, q_tokens, dim)
    query_ids = ids(pad_sequence([q.token_ids.long() for q in distinct], batch_first=True, padding_value=-1))
    query_token_mask = pad_sequence([torch.ones(q.token_ids.shape[0], dtype=torch.bool) for q in distinct], batch_first=True)
    query = torch.stack([q.embedding for q in distinct]).float()
    if same_query:
        rows = len(documents)
        query, query_tokens = query.expand(rows, -1), query_tokens.expand(rows, -1, -1)
        query_ids, query_token_mask = query_ids.expand(rows, -1), query_token_mask.expand(rows, -1)

    token_slot = pad_sequence([d.token_slot for d in documents], batch_first=True, padding_value=-1)  # (batch, tokens)
    # Token embeddings are the batch's one large tensor: allocate it once and convert each document's
    # float16 tokens straight into it (padding then converting would allocate and walk it twice).
    tokens = torch.empty(len(documents), token_slot.shape[1], dim)  # (batch, tokens, dim)
    for row, document in enumerate(documents):
        n = document.tokens.shape[0]
        tokens[row, :n].copy_(document.tokens)
        tokens[row, n:].zero_()  # padding only: zero-filling the whole tensor first would touch it twice
    title_mask = torch.tensor([t is not None for t in titles], dtype=torch.bool)
    return PathwayInput(
        query=query,
        query_tokens=query_tokens,
        query_token_mask=query_token_mask,
        query_ids=query_ids,
        slots=pad_sequence([d.slots for d in documents], batch_first=True).float(),  # (batch, slots, dim)
        slot_mask=pad_sequence([torch.ones(len(d), dtype=torch.bool) for d in documents], batch_first=True),
        tokens=tokens,
        token_mask=token_slot >= 0,
        token_ids=ids(pad_sequence([d.token_ids for d in documents], batch_first=True, padding_value=-1)),
        token_slot=token_slot,
        token_scale=1.0 / torch.linalg.vector_norm(tokens, dim=-1).clamp(min=1e-12),
        title=torch.stack([t.embedding.float() if t is not None else torch.zeros(dim) for t in titles]),
        title_mask=title_mask,
    )
