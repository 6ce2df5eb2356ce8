"""Collation: from per-text encodings to the padded `PathwayInput` tensors the model reads."""

from __future__ import annotations

from typing import Sequence

import torch

from pathways.base import PathwayInput

from .encoder import Encoding


def _pad_tokens(encodings: Sequence[Encoding], dim: int, special_ids: torch.Tensor):
    """Stacks token embeddings and ids of texts into (texts, max_tokens, ...) tensors in one scatter."""
    lengths = torch.tensor([e.tokens.shape[0] for e in encodings], dtype=torch.long)
    width = int(lengths.max()) if len(encodings) else 1
    rows = torch.repeat_interleave(torch.arange(len(encodings)), lengths)
    cols = torch.arange(int(lengths.sum())) - torch.repeat_interleave(torch.cumsum(lengths, 0) - lengths, lengths)
    tokens = torch.zeros(len(encodings), width, dim)
    ids = torch.full((len(encodings), width), -1, dtype=torch.long)
    mask = torch.zeros(len(encodings), width, dtype=torch.bool)
    if len(encodings):
        tokens[rows, cols] = torch.cat([e.tokens for e in encodings]).float()
        flat_ids = torch.cat([e.token_ids for e in encodings])
        ids[rows, cols] = torch.where(torch.isin(flat_ids, special_ids), -1, flat_ids)
        mask[rows, cols] = True
    return tokens, ids, mask


def collate(
    queries: Sequence[Encoding],
    documents: Sequence[Sequence[Encoding]],
    titles: Sequence[Encoding | None],
    special_ids: Sequence[int],
) -> PathwayInput:
    """Pads a batch of (query, document slots, title) triples into one `PathwayInput`.

    Every document must have at least one slot: empty documents are answered without the model.
    """
    if any(len(doc) == 0 for doc in documents):
        raise ValueError("collate: every document needs at least one slot")
    batch = len(documents)
    dim = queries[0].embedding.shape[0]
    special = torch.tensor(sorted(special_ids), dtype=torch.long)
    counts = torch.tensor([len(doc) for doc in documents])
    max_slots = int(counts.max())
    flat_slots = [e for doc in documents for e in doc]

    query_tokens, query_ids, query_token_mask = _pad_tokens(queries, dim, special)
    slot_tok, slot_ids_flat, slot_tok_mask = _pad_tokens(flat_slots, dim, special)
    width = slot_tok.shape[1]

    rows = torch.repeat_interleave(torch.arange(batch), counts)
    cols = torch.arange(len(flat_slots)) - torch.repeat_interleave(torch.cumsum(counts, 0) - counts, counts)
    slots = torch.zeros(batch, max_slots, dim)
    slots[rows, cols] = torch.stack([e.embedding for e in flat_slots])
    slot_mask = torch.zeros(batch, max_slots, dtype=torch.bool)
    slot_mask[rows, cols] = True
    slot_tokens = torch.zeros(batch, max_slots, width, dim)
    slot_tokens[rows, cols] = slot_tok
    slot_ids = torch.full((batch, max_slots, width), -1, dtype=torch.long)
    slot_ids[rows, cols] = slot_ids_flat
    slot_token_mask = torch.zeros(batch, max_slots, width, dtype=torch.bool)
    slot_token_mask[rows, cols] = slot_tok_mask

    title_mask = torch.tensor([t is not None for t in titles], dtype=torch.bool)
    title = torch.stack([t.embedding if t is not None else torch.zeros(dim) for t in titles])
    return PathwayInput(
        query=torch.stack([q.embedding for q in queries]),
        query_tokens=query_tokens,
        query_token_mask=query_token_mask,
        query_ids=query_ids,
        slots=slots,
        slot_mask=slot_mask,
        slot_tokens=slot_tokens,
        slot_token_mask=slot_token_mask,
        slot_ids=slot_ids,
        title=title,
        title_mask=title_mask,
    )
