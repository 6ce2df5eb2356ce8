"""The pathway interface: every pathway reads one `PathwayInput` and returns a `PathwayOutput`."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import NamedTuple

import torch
from torch import nn


@dataclass
class PathwayInput:
    """A batch of (query, document) pairs.

    Query and slot fields are padded per row (False in the masks, -1 in the ids). Tokens are packed:
    the tokens of every slot of every row one after another, rows in order, with no padding. Token
    counts vary several-fold between documents, so padding them would pay for tokens that are not there.
    """

    query: torch.Tensor  # (batch, dim) L2-normalised query embedding
    query_tokens: torch.Tensor  # (batch, query_tokens, dim) contextual query token embeddings
    query_token_mask: torch.Tensor  # (batch, query_tokens) bool
    query_ids: torch.Tensor  # (batch, query_tokens) token ids; -1 for padding and special tokens
    slots: torch.Tensor  # (batch, slots, dim) L2-normalised slot embeddings
    slot_mask: torch.Tensor  # (batch, slots) bool
    tokens: torch.Tensor  # (tokens, dim) contextual token embeddings of all slots of all rows, packed
    token_ids: torch.Tensor  # (tokens,) token ids; -1 for special tokens
    token_row: torch.Tensor  # (tokens,) int64 the batch row of each token, ascending
    token_slot: torch.Tensor  # (tokens,) int64 the slot of each token within its row
    token_scale: torch.Tensor  # (tokens,) 1 / L2 norm of each token embedding: cosines without a normalised copy
    title: torch.Tensor  # (batch, dim) title embedding; zeros where the document has none
    title_mask: torch.Tensor  # (batch,) bool: the document has a title
    shared_query: bool = False  # every row has the same query: products of tokens with it are one matrix product

    def select(self, index: torch.Tensor) -> "PathwayInput":
        """The sub-batch of the given rows: how the gate dispatches a pathway's share of the batch.

        Fields are indexed when a pathway first reads them, so the large token tensors are copied
        only for the pathways that use them.
        """
        if index.numel() == self.batch_size and bool(
            (index == torch.arange(self.batch_size, device=index.device)).all()
        ):
            return self  # every row chose this pathway (always so when one query scores many documents)
        return _RowSelection(self, index)  # type: ignore[return-value]

    def to(self, device: torch.device | str) -> "PathwayInput":
        return PathwayInput(**{f.name: _to(getattr(self, f.name), device) for f in fields(self)})

    @property
    def batch_size(self) -> int:
        return self.query.shape[0]


def _to(value, device):
    return value.to(device) if isinstance(value, torch.Tensor) else value


_TOKEN_FIELDS = ("tokens", "token_ids", "token_row", "token_slot", "token_scale")


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
        if name in _TOKEN_FIELDS:
            self.__dict__.update(self._tokens())
            return self.__dict__[name]
        value = getattr(self._source, name)
        if isinstance(value, torch.Tensor):
            value = value[self._index]
        self.__dict__[name] = value
        return value

    def _tokens(self) -> dict[str, torch.Tensor]:
        """The selected rows' tokens, renumbered to their new rows and kept in row order."""
        source = self._source
        new_row = torch.full((source.batch_size,), -1, dtype=torch.long, device=self._index.device)
        new_row[self._index] = torch.arange(self._index.numel(), device=self._index.device)
        token_row = new_row[source.token_row]  # (tokens,) -1 for rows not selected
        kept = token_row.ge(0).nonzero().squeeze(1)
        kept = kept[torch.argsort(token_row[kept], stable=True)]  # (kept tokens,)
        selected = {name: getattr(source, name)[kept] for name in _TOKEN_FIELDS if name != "token_row"}
        return {**selected, "token_row": token_row[kept]}


def mlp(in_dim: int, hidden_dim: int, dropout: float) -> nn.Sequential:
    """The two-layer head every pathway ends in."""
    return nn.Sequential(
        nn.Linear(in_dim, hidden_dim),
        nn.GELU(),
        nn.Dropout(dropout),
        nn.Linear(hidden_dim, hidden_dim),
        nn.LayerNorm(hidden_dim),
    )


def token_products(x: PathwayInput, vectors: torch.Tensor) -> torch.Tensor:
    """Dot products of every token with a few vectors: `(vectors, dim)`, the same for every row, or
    `(batch, vectors, dim)`, one set per row -> `(tokens, vectors)`.

    Shared vectors are one matrix product over the packed tokens. Per-row vectors (rows with
    different queries, in training) are multiplied with each row's tokens through a padded copy.
    """
    if vectors.dim() == 2:
        return x.tokens @ vectors.t()
    batch, dim = vectors.shape[0], x.tokens.shape[-1]
    counts = torch.bincount(x.token_row, minlength=batch)  # (batch,)
    position = torch.arange(x.token_row.numel(), device=x.tokens.device) - (counts.cumsum(0) - counts)[x.token_row]
    padded = x.tokens.new_zeros(batch, int(counts.max()), dim)  # (batch, longest row, dim)
    padded[x.token_row, position] = x.tokens
    return torch.bmm(vectors, padded.transpose(1, 2))[x.token_row, :, position]  # (tokens, vectors)


def query_per_token(values: torch.Tensor, x: PathwayInput) -> torch.Tensor:
    """Per-row query values `(batch, ...)` as seen by each token: `(tokens, ...)`, or `(1, ...)`,
    which broadcasts over the tokens, when every row has the same query."""
    return values[:1] if x.shared_query else values[x.token_row]


def token_slot_index(x: PathwayInput) -> torch.Tensor:
    """(tokens,) each token's slot as a flat position in `(batch * slots)`."""
    return x.token_row * x.slot_mask.shape[1] + x.token_slot


def segment_max(values: torch.Tensor, x: PathwayInput, empty: float = -1.0) -> torch.Tensor:
    """Per-slot maximum of per-token values: (tokens, features) -> (batch, slots, features).

    Slots without tokens (padding) get `empty`.
    """
    batch, slots = x.slot_mask.shape
    features = values.shape[-1]
    index = token_slot_index(x).unsqueeze(-1).expand(-1, features)  # (tokens, features)
    out = values.new_full((batch * slots, features), float("-inf")).scatter_reduce(0, index, values, reduce="amax")
    return torch.where(torch.isinf(out), torch.full_like(out, empty), out).view(batch, slots, features)


def segment_sum(values: torch.Tensor, x: PathwayInput) -> torch.Tensor:
    """Per-slot sum of per-token values: (tokens, features) -> (batch, slots, features)."""
    batch, slots = x.slot_mask.shape
    features = values.shape[-1]
    out = values.new_zeros(batch * slots, features).index_add_(0, token_slot_index(x), values)
    return out.view(batch, slots, features)


def real_slots(slot_mask: torch.Tensor) -> torch.Tensor:
    """Flat positions `(real slots,)` of the real slots in a `(batch, slots)` mask.

    `index_select` with them copies a wide `(batch, slots, features)` tensor's real rows faster on CPU
    than indexing it with the boolean mask.
    """
    return slot_mask.reshape(-1).nonzero().squeeze(1)


def masked_mean(x: torch.Tensor, mask: torch.Tensor, dim: int) -> torch.Tensor:
    """Mean of `x` over `dim` where `mask` is True; zero where nothing is."""
    weights = mask.to(x.dtype).unsqueeze(-1)
    return (x * weights).sum(dim) / weights.sum(dim).clamp(min=1.0)


class PathwayOutput(NamedTuple):
    """What a pathway makes: its slot states, and the slots' stance toward the query if it judges one."""

    hidden: torch.Tensor  # (batch, slots, hidden), zeros on padding
    stance_logits: torch.Tensor | None = None  # (batch, slots, stances)


@dataclass
class CorpusStatistics:
    """What a pathway may learn from the training corpora before training (`Pathway.fit`)."""

    idf: torch.Tensor  # (vocab,) inverse document frequency over slots of every token id; 0 for special tokens


class IdfTable:
    """Mixin for a module with an `idf` buffer (one value per vocabulary id) that `fit` fills from the
    training corpora, so the table travels with the checkpoint."""

    idf: torch.Tensor

    @torch.no_grad()
    def set_idf(self, idf: torch.Tensor) -> None:
        """Replaces the IDF table, one value per vocabulary id."""
        if idf.shape != self.idf.shape:
            raise ValueError(f"idf must have shape {tuple(self.idf.shape)}, got {tuple(idf.shape)}")
        self.idf.copy_(idf)

    def fit(self, statistics: CorpusStatistics) -> None:
        """Takes the IDF table from the training corpora's statistics."""
        self.set_idf(statistics.idf)


class Pathway(nn.Module):
    """Base class. Subclasses set `name` and `question` and implement `forward`; they declare what else
    they need in class attributes, so the model, the engine and training never ask for a pathway by name.

    Args:
        embedding_dim: width of the encoder's embeddings.
        hidden_dim: width of the pathway's output.
        dropout: dropout rate inside the pathway.
    """

    name: str = ""
    question: str = ""
    reads_titles: bool = False  # forward reads `x.title`: the engine encodes titles only when such a pathway runs
    config_options: tuple[str, ...] = ()  # `SpicyLentilConfig` fields passed to the constructor by keyword

    def __init__(self, embedding_dim: int, hidden_dim: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.embedding_dim = embedding_dim
        self.hidden_dim = hidden_dim
        self.dropout = dropout

    def forward(self, x: PathwayInput) -> PathwayOutput:
        raise NotImplementedError

    def fit(self, statistics: CorpusStatistics) -> None:
        """Learns what the pathway takes from the training corpora; most take nothing.

        Args:
            statistics: the training corpora's statistics.
        """

    def head_on_slots(self, features: torch.Tensor, x: PathwayInput) -> torch.Tensor:
        """`self.head` over the real slots only: (batch, slots, features) -> (batch, slots, hidden), zeros on padding.

        The head is most of a pathway's arithmetic, and a batch of documents of unequal length is partly padding.
        """
        batch, slots, width = features.shape
        real = real_slots(x.slot_mask)
        out = features.new_zeros(batch * slots, self.hidden_dim)
        out.index_copy_(
            0, real, self.head(features.reshape(batch * slots, width).index_select(0, real))
        )  # (real slots, hidden)
        return out.view(batch, slots, self.hidden_dim)
