"""Comprehension: what does the slot mean given the whole document?"""

import torch
from torch import nn

from .base import Pathway, PathwayInput, PathwayOutput, mlp


class Comprehension(Pathway):
    """Contextualises each slot by self-attention across the document's slots, then matches it to the query.

    "It reduced mortality by half" means nothing alone; read with the sentence naming the drug, it
    answers the query.
    """

    name = "comprehension"
    question = "What does the slot mean given the whole document?"

    def __init__(self, embedding_dim: int, hidden_dim: int, dropout: float = 0.1) -> None:
        super().__init__(embedding_dim, hidden_dim, dropout)
        self.project = nn.Linear(embedding_dim, hidden_dim)
        self.query = nn.Linear(embedding_dim, hidden_dim)
        self.context = nn.TransformerEncoderLayer(
            hidden_dim, nhead=3, dim_feedforward=2 * hidden_dim, dropout=dropout, batch_first=True, norm_first=True
        )
        self.head = mlp(3 * hidden_dim, hidden_dim, dropout)

    def forward(self, x: PathwayInput) -> PathwayOutput:
        h = self.project(x.slots)  # (batch, slots, hidden)
        h = self.context(h, src_key_padding_mask=~x.slot_mask)  # (batch, slots, hidden)
        q = self.query(x.query).unsqueeze(1).expand_as(h)
        return PathwayOutput(self.head_on_slots(torch.cat([h, q * h, (q - h).abs()], dim=-1), x))
