"""The pathway interface: every pathway reads one `PathwayInput` and returns `(batch, slots, hidden)`."""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch
from torch import nn


@dataclass
class PathwayInput:
    """A batch of (query, document) pairs, padded. Padding is False in the masks, -1 in the ids."""

    query: torch.Tensor  # (batch, dim) L2-normalised query embedding
    query_tokens: torch.Tensor  # (batch, query_tokens, dim) contextual query token embeddings
    query_token_mask: torch.Tensor  # (batch, query_tokens) bool
    query_ids: torch.Tensor  # (batch, query_tokens) token ids; -1 for padding and special tokens
    slots: torch.Tensor  # (batch, slots, dim) L2-normalised slot embeddings
    slot_mask: torch.Tensor  # (batch, slots) bool
    tokens: torch.Tensor  # (batch, tokens, dim) contextual token embeddings of all the row's slots, packed
    token_mask: torch.Tensor  # (batch, tokens) bool
    token_ids: torch.Tensor  # (batch, tokens) token ids; -1 for padding and special tokens
    token_slot: torch.Tensor  # (batch, tokens) the slot each token belongs to; -1 for padding
    token_scale: torch.Tensor  # (batch, tokens) 1 / L2 norm of each token embedding: cosines without a normalised copy
    title: torch.Tensor  # (batch, dim) title embedding; zeros where the document has none
    title_mask: torch.Tensor  # (batch,) bool: the document has a title

    def select(self, index: torch.Tensor) -> "PathwayInput":
        """The sub-batch of the given rows: how the gate dispatches a pathway's share of the batch.

        Fields are indexed when a pathway first reads them, so the large token tensors are copied
        only for the pathways that use them, and trimmed to the longest selected row.
        """
        if index.numel() == self.batch_size and bool((index == torch.arange(self.batch_size, device=index.device)).all()):
            return self  # every row chose this pathway (always so when one query scores many documents)
        return _RowSelection(self, index)  # type: ignore[return-value]

    def to(self, device: torch.device | str) -> "PathwayInput":
        return PathwayInput(**{f.name: getattr(self, f.name).to(device) for f in fields(self)})

    @property
    def batch_size(self) -> int:
        return self.query.shape[0]


_TOKEN_FIELDS = ("tokens", "token_mask", "token_ids", "token_slot", "token_scale")


class _RowSelection:
    """Some rows of a `PathwayInput`, read like one; each field is indexed on first access."""

    def __init__(self, source: PathwayInput, index: torch.Tensor) -> None:
        self._source = source
        self._index = index

    @property
    def batch_size(self) -> int:
        return self._index.numel()

    def __getattr__(self, name: str):
        if name.startswith("_") or name not in PathwayInput.__dataclass_fields__:
            raise AttributeError(name)
        value = getattr(self._source, name)[self._index]
        if name in _TOKEN_FIELDS:
            width = max(1, int(self._source.token_mask[self._index].sum(-1).max()))
            value = value[:, :width]  # tokens are packed from the left: the rest is padding for these rows
        self.__dict__[name] = value
        return value


def mlp(in_dim: int, hidden_dim: int, dropout: float) -> nn.Sequential:
    """The two-layer head every pathway ends in."""
    return nn.Sequential(
        nn.Linear(in_dim, hidden_dim),
        nn.GELU(),
        nn.Dropout(dropout),
        nn.Linear(hidden_dim, hidden_dim),
        nn.LayerNorm(hidden_dim),
    )


def token_products(tokens: torch.Tensor, vectors: torch.Tensor) -> torch.Tensor:
    """Dot products of every token with a few vectors: (batch, tokens, dim) x (vectors, dim) or
    (batch, vectors, dim) -> (batch, tokens, vectors).

    Computed as vectors x tokens^T and returned transposed: with a few vectors against thousands
    of tokens, MKL's CPU kernels run that orientation about twice as fast, with equal results.
    """
    return torch.bmm(vectors.expand(tokens.shape[0], -1, -1), tokens.transpose(1, 2)).transpose(1, 2)


def segment_max(values: torch.Tensor, x: PathwayInput, empty: float = -1.0) -> torch.Tensor:
    """Per-slot maximum of per-token values: (batch, tokens, features) -> (batch, slots, features).

    Slots without tokens get `empty`.
    """
    batch, slots = x.slot_mask.shape
    features = values.shape[-1]
    index = torch.where(x.token_mask, x.token_slot, slots).unsqueeze(-1).expand(-1, -1, features)
    out = values.new_full((batch, slots + 1, features), float("-inf"))
    out = out.scatter_reduce(1, index, values, reduce="amax", include_self=True)[:, :slots]
    return torch.where(torch.isinf(out), torch.full_like(out, empty), out)


def segment_sum(values: torch.Tensor, x: PathwayInput) -> torch.Tensor:
    """Per-slot sum of per-token values: (batch, tokens, features) -> (batch, slots, features)."""
    batch, slots = x.slot_mask.shape
    features = values.shape[-1]
    # One flat index_add_ over (batch * (slots + 1)) rows: about 9x faster on CPU than scatter_add
    # along dim 1 with an expanded index. Padding tokens land in each row's spare last slot.
    row_offset = torch.arange(batch, device=values.device).unsqueeze(-1) * (slots + 1)
    index = (torch.where(x.token_mask, x.token_slot, slots) + row_offset).reshape(-1)
    out = values.new_zeros(batch * (slots + 1), features)
    out.index_add_(0, index, values.reshape(-1, features))
    return out.view(batch, slots + 1, features)[:, :slots]


def real_slots(slot_mask: torch.Tensor) -> torch.Tensor:
    """Flat positions `(real slots,)` of the real slots in a `(batch, slots)` mask.

    `index_select` with them copies a wide `(batch, slots, features)` tensor's real rows about 3x
    faster on CPU than indexing it with the boolean mask.
    """
    return slot_mask.reshape(-1).nonzero().squeeze(1)


def masked_mean(x: torch.Tensor, mask: torch.Tensor, dim: int) -> torch.Tensor:
    """Mean of `x` over `dim` where `mask` is True; zero where nothing is."""
    weights = mask.to(x.dtype).unsqueeze(-1)
    return (x * weights).sum(dim) / weights.sum(dim).clamp(min=1.0)


class Pathway(nn.Module):
    """Base class. Subclasses set `name` and `question` and implement `forward`.

    Args:
        embedding_dim: width of the encoder's embeddings.
        hidden_dim: width of the pathway's output.
        dropout: dropout rate inside the pathway.
    """

    name: str = ""
    question: str = ""

    def __init__(self, embedding_dim: int, hidden_dim: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.embedding_dim = embedding_dim
        self.hidden_dim = hidden_dim
        self.dropout = dropout

    def forward(self, x: PathwayInput) -> torch.Tensor:  # (batch, slots, hidden)
        raise NotImplementedError

    def head_on_slots(self, features: torch.Tensor, x: PathwayInput) -> torch.Tensor:
        """`self.head` over the real slots only: (batch, slots, features) -> (batch, slots, hidden), zeros on padding.

        The head is most of a pathway's arithmetic, and a batch of documents is about a third padding.
        """
        batch, slots, width = features.shape
        real = real_slots(x.slot_mask)
        out = features.new_zeros(batch * slots, self.hidden_dim)
        out.index_copy_(0, real, self.head(features.reshape(batch * slots, width).index_select(0, real)))  # (real slots, hidden)
        return out.view(batch, slots, self.hidden_dim)
