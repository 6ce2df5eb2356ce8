"""Reprehension: does the slot contradict or negate the query?"""

import torch
from torch import nn

from .base import Pathway, PathwayInput, PathwayOutput, mlp, segment_max, token_products


class Reprehension(Pathway):
    """Contrast and negation: learned cue probes over tokens (not, no, failed, however...) and the query-slot contrast.

    A slot that refutes a claim is as relevant as one that supports it; this pathway's hidden state
    also feeds a stance head (neutral / support / contradict) trained where stance labels exist.
    """

    name = "reprehension"
    question = "Does the slot contradict or negate the query?"
    num_cues = 16
    config_options = ("num_stances",)

    def __init__(self, embedding_dim: int, hidden_dim: int, dropout: float = 0.1, num_stances: int = 3) -> None:
        super().__init__(embedding_dim, hidden_dim, dropout)
        self.cues = nn.Parameter(torch.randn(self.num_cues, embedding_dim) / embedding_dim**0.5)
        self.contrast = nn.Linear(2 * embedding_dim, hidden_dim)
        self.head = mlp(hidden_dim + 3 * self.num_cues, hidden_dim, dropout)
        self.stance = nn.Linear(hidden_dim, num_stances)

    def forward(self, x: PathwayInput) -> PathwayOutput:
        # Response of each cue probe to each (unit-length) token.
        token_response = token_products(x, self.cues) * x.token_scale.unsqueeze(-1)  # (tokens, cues)
        slot_cues = segment_max(token_response, x)  # (batch, slots, cues)
        query_response = torch.matmul(
            nn.functional.normalize(x.query_tokens, dim=-1), self.cues.t()
        )  # (batch, q_tokens, cues)
        query_response = query_response.masked_fill(~x.query_token_mask.unsqueeze(-1), -1.0)
        query_cues = query_response.amax(dim=1).unsqueeze(1).expand_as(slot_cues)  # (batch, slots, cues)
        q = x.query.unsqueeze(1).expand_as(x.slots)
        contrast = self.contrast(torch.cat([q * x.slots, q - x.slots], dim=-1))  # (batch, slots, hidden)
        hidden = self.head_on_slots(torch.cat([contrast, slot_cues, query_cues, slot_cues - query_cues], dim=-1), x)
        return PathwayOutput(hidden, self.stance(hidden))  # stance of each slot: (batch, slots, num_stances)
