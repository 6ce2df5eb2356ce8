"""Slot-to-document pooling: which slots carry the document score."""

from __future__ import annotations

import torch
from torch import nn


class SelfAttentionPooling(nn.Module):
    """Additive self-attention over slots (Lin et al. 2017): `softmax(v . tanh(W z))`."""

    def __init__(self, embedding_dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.key = nn.Linear(hidden_dim, hidden_dim)
        self.score = nn.Linear(hidden_dim, 1, bias=False)

    def forward(
        self, z: torch.Tensor, slot_mask: torch.Tensor, query: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.score(torch.tanh(self.key(z))).squeeze(-1)  # (batch, slots)
        weights = torch.softmax(logits.masked_fill(~slot_mask, float("-inf")), dim=-1)
        return torch.einsum("bs,bsh->bh", weights, z), weights


class QueryAttentionPooling(nn.Module):
    """Scaled dot-product attention from the projected query to the slots."""

    def __init__(self, embedding_dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.query = nn.Linear(embedding_dim, hidden_dim)

    def forward(
        self, z: torch.Tensor, slot_mask: torch.Tensor, query: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        logits = torch.einsum("bh,bsh->bs", self.query(query), z) / z.shape[-1] ** 0.5  # (batch, slots)
        weights = torch.softmax(logits.masked_fill(~slot_mask, float("-inf")), dim=-1)
        return torch.einsum("bs,bsh->bh", weights, z), weights


POOLING_CLASSES = {"self_attention": SelfAttentionPooling, "query_attention": QueryAttentionPooling}
