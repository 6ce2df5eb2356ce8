"""Apprehension: what is new here, relative to what came before?"""

import torch
from torch import nn

from .base import Pathway, PathwayInput, PathwayOutput, mlp


class Apprehension(Pathway):
    """Novelty against a causal running context: each slot is compared with the mean of the slots before it.

    A finding stated for the first time is where a claim is grounded; its restatement in a
    conclusion adds little.
    """

    name = "apprehension"
    question = "What is new here, relative to what came before?"

    def __init__(self, embedding_dim: int, hidden_dim: int, dropout: float = 0.1) -> None:
        super().__init__(embedding_dim, hidden_dim, dropout)
        self.head = mlp(3 * embedding_dim + 3, hidden_dim, dropout)

    def forward(self, x: PathwayInput) -> PathwayOutput:
        mask = x.slot_mask.unsqueeze(-1).float()
        s = x.slots * mask
        running = torch.cumsum(s, dim=1) - s  # sum of the slots before each slot: (batch, slots, dim)
        count = (torch.cumsum(mask, dim=1) - mask).clamp(min=1)
        context = running / count  # (batch, slots, dim); zero for the first slot
        novelty = s - context
        q = x.query.unsqueeze(1)
        familiarity = nn.functional.cosine_similarity(s, context, dim=-1, eps=1e-6).unsqueeze(-1)
        new_for_query = (q * novelty).sum(-1, keepdim=True)
        first = (count == 1).float() * (torch.cumsum(mask, dim=1) == 1).float()
        return PathwayOutput(
            self.head_on_slots(torch.cat([novelty, q * novelty, q * s, familiarity, new_for_query, first], dim=-1), x)
        )
