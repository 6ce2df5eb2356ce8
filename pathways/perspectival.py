"""Perspectival knowing: does the slot stand out in its document, seen from the query?"""

import torch
from torch import nn

from .base import Pathway, PathwayInput, PathwayOutput, masked_mean, mlp


class Perspectival(Pathway):
    """Salience relative to the document centroid, weighted by query-chosen dimensions.

    A sentence that merely repeats the document's gist scores like the gist; one that departs from
    it along the directions the query cares about stands out.
    """

    name = "perspectival"
    question = "Does the slot stand out in its document, seen from the query?"

    def __init__(self, embedding_dim: int, hidden_dim: int, dropout: float = 0.1) -> None:
        super().__init__(embedding_dim, hidden_dim, dropout)
        self.lens = nn.Linear(embedding_dim, embedding_dim)  # the query's view: which dimensions matter
        self.head = mlp(2 * embedding_dim + 3, hidden_dim, dropout)

    def forward(self, x: PathwayInput) -> PathwayOutput:
        centroid = masked_mean(x.slots, x.slot_mask, dim=1)  # (batch, dim)
        deviation = x.slots - centroid.unsqueeze(1)  # (batch, slots, dim)
        lens = torch.sigmoid(self.lens(x.query)).unsqueeze(1)  # (batch, 1, dim)
        q = x.query.unsqueeze(1)
        query_gain = (q * x.slots).sum(-1, keepdim=True) - (q * centroid.unsqueeze(1)).sum(-1, keepdim=True)
        typicality = nn.functional.cosine_similarity(x.slots, centroid.unsqueeze(1), dim=-1).unsqueeze(-1)
        spread = deviation.norm(dim=-1, keepdim=True)
        features = torch.cat([lens * deviation, q * deviation, query_gain, typicality, spread], dim=-1)
        return PathwayOutput(self.head_on_slots(features, x))
