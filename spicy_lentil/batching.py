"""Collation: from per-text encodings to the `PathwayInput` tensors the model reads.

Slot tokens are packed per row, all of a document's slots one after another, with the slot each
token belongs to: padding every slot to the longest one in the batch would multiply the work of
the token-level pathways several times over (one long sentence pads every other slot).
"""

from __future__ import annotations

from typing import Sequence

import torch

from pathways.base import PathwayInput

from .encoder import Encoding


def _pack(groups: Sequence[Sequence[Encoding]], dim: int, special_ids: torch.Tensor):
    """Packs the tokens of each row's texts into (rows, max_tokens, ...) tensors in one scatter.

    Returns tokens, ids (-1 for special tokens and padding), mask and, per token, the index of the
    text it came from within its row (-1 for padding).
    """
    flat = [e for group in groups for e in group]
    lengths = torch.tensor([e.tokens.shape[0] for e in flat], dtype=torch.long)  # per text
    per_row = torch.tensor([sum(e.tokens.shape[0] for e in group) for group in groups], dtype=torch.long)
    width = max(1, int(per_row.max())) if len(groups) else 1
    rows = torch.repeat_interleave(torch.arange(len(groups)), per_row)  # per token
    row_start = torch.cumsum(per_row, 0) - per_row
    cols = torch.arange(int(per_row.sum())) - row_start[rows]
    text_in_row = torch.cat([torch.arange(len(group)) for group in groups]) if flat else torch.zeros(0, dtype=torch.long)
    tokens = torch.zeros(len(groups), width, dim)
    ids = torch.full((len(groups), width), -1, dtype=torch.long)
    owner = torch.full((len(groups), width), -1, dtype=torch.long)
    if flat:
        tokens[rows, cols] = torch.cat([e.tokens for e in flat]).float()
        flat_ids = torch.cat([e.token_ids for e in flat])
        ids[rows, cols] = torch.where(torch.isin(flat_ids, special_ids), -1, flat_ids)
        owner[rows, cols] = torch.repeat_interleave(text_in_row, lengths)
    return tokens, ids, owner >= 0, owner


def collate(
    queries: Sequence[Encoding],
    documents: Sequence[Sequence[Encoding]],
    titles: Sequence[Encoding | None],
    special_ids: Sequence[int],
) -> PathwayInput:
    """Builds one `PathwayInput` from a batch of (query, document slots, title) triples.

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

    query_tokens, query_ids, query_token_mask, _ = _pack([[q] for q in queries], dim, special)
    tokens, token_ids, token_mask, token_slot = _pack(documents, dim, special)

    rows = torch.repeat_interleave(torch.arange(batch), counts)
    cols = torch.arange(len(flat_slots)) - torch.repeat_interleave(torch.cumsum(counts, 0) - counts, counts)
    slots = torch.zeros(batch, max_slots, dim)
    slots[rows, cols] = torch.stack([e.embedding for e in flat_slots]).float()
    slot_mask = torch.zeros(batch, max_slots, dtype=torch.bool)
    slot_mask[rows, cols] = True

    title_mask = torch.tensor([t is not None for t in titles], dtype=torch.bool)
    title = torch.stack([t.embedding.float() if t is not None else torch.zeros(dim) for t in titles])
    return PathwayInput(
        query=torch.stack([q.embedding for q in queries]).float(),
        query_tokens=query_tokens,
        query_token_mask=query_token_mask,
        query_ids=query_ids,
        slots=slots,
        slot_mask=slot_mask,
        tokens=tokens,
        token_mask=token_mask,
        token_ids=token_ids,
        token_slot=token_slot,
        title=title,
        title_mask=title_mask,
    )
