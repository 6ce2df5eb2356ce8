"""Procedural knowing: does the slot's place in the sequence of the document matter?"""

import math

import torch
from torch import nn

from .base import Pathway, PathwayInput, PathwayOutput, mlp


class Procedural(Pathway):
    """Reads the document as a sequence: convolutions over neighbouring slots plus position, FiLM-modulated
    by the query.

    Abstracts and reports have an order (background, method, result, conclusion); where a slot
    sits, and what surrounds it, says what kind of statement it is.
    """

    name = "procedural"
    question = "Does the slot's place in the sequence of the document matter?"
    frequencies = (1.0, 2.0, 4.0)  # periods of the sinusoidal position code, in document lengths
    position_features = 3 + 2 * len(frequencies)

    def __init__(self, embedding_dim: int, hidden_dim: int, dropout: float = 0.1) -> None:
        super().__init__(embedding_dim, hidden_dim, dropout)
        self.project = nn.Linear(embedding_dim + self.position_features, hidden_dim)
        self.convs = nn.ModuleList(nn.Conv1d(hidden_dim, hidden_dim, kernel_size=3, padding=1) for _ in range(2))
        self.film = nn.Linear(embedding_dim, 2 * hidden_dim)  # query -> (gamma, beta)
        self.head = mlp(hidden_dim, hidden_dim, dropout)

    def _positions(self, mask: torch.Tensor) -> torch.Tensor:
        index = torch.cumsum(mask.long(), dim=1) - 1  # (batch, slots)
        length = mask.sum(dim=1, keepdim=True).clamp(min=1)
        relative = index.float() / (length - 1).clamp(min=1).float()  # 0 first slot, 1 last slot
        freqs = torch.tensor(self.frequencies, device=mask.device) * math.pi
        periodic = torch.cat([torch.sin(relative.unsqueeze(-1) * freqs), torch.cos(relative.unsqueeze(-1) * freqs)], -1)
        first = (index == 0).float().unsqueeze(-1)
        last = (index == length - 1).float().unsqueeze(-1)
        return torch.cat([relative.unsqueeze(-1), periodic, first, last], dim=-1)  # (batch, slots, position_features)

    def forward(self, x: PathwayInput) -> PathwayOutput:
        mask = x.slot_mask.unsqueeze(-1).float()
        h = self.project(torch.cat([x.slots, self._positions(x.slot_mask)], dim=-1)) * mask  # (batch, slots, hidden)
        for conv in self.convs:
            h = (h + torch.relu(conv(h.transpose(1, 2)).transpose(1, 2))) * mask  # padding stays zero
        gamma, beta = self.film(x.query).unsqueeze(1).chunk(2, dim=-1)  # (batch, 1, hidden) each
        return PathwayOutput(self.head_on_slots(h * (1 + gamma) + beta, x))
