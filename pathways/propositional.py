"""Propositional knowing: does the slot state what the query asks?"""

import torch

from .base import Pathway, PathwayInput, PathwayOutput, mlp


class Propositional(Pathway):
    """Matches slot meaning to query meaning: the classic `[q, s, q*s, |q-s|]` interaction features."""

    name = "propositional"
    question = "Does the slot state what the query asks?"

    def __init__(self, embedding_dim: int, hidden_dim: int, dropout: float = 0.1) -> None:
        super().__init__(embedding_dim, hidden_dim, dropout)
        self.head = mlp(4 * embedding_dim + 1, hidden_dim, dropout)

    def forward(self, x: PathwayInput) -> PathwayOutput:
        q = x.query.unsqueeze(1).expand_as(x.slots)  # (batch, slots, dim)
        s = x.slots
        cosine = (q * s).sum(-1, keepdim=True)  # (batch, slots, 1)
        return PathwayOutput(self.head_on_slots(torch.cat([q, s, q * s, (q - s).abs(), cosine], dim=-1), x))
