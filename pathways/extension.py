"""Extension: does the slot's neighbourhood extend the match?"""

import torch

from .base import Pathway, PathwayInput, PathwayOutput, masked_mean, mlp


class Extension(Pathway):
    """Matches the query against the slot's neighbours (a window of two either side) and the document title.

    A sentence that says "this effect" leans on the sentence before it and on what the document is
    about; the match can extend beyond the slot itself.
    """

    name = "extension"
    question = "Does the slot's neighbourhood (neighbouring slots, the title) extend the match?"
    reads_titles = True
    window = 2

    def __init__(self, embedding_dim: int, hidden_dim: int, dropout: float = 0.1) -> None:
        super().__init__(embedding_dim, hidden_dim, dropout)
        self.head = mlp(3 * embedding_dim + 3, hidden_dim, dropout)

    def forward(self, x: PathwayInput) -> PathwayOutput:
        mask = x.slot_mask.float().unsqueeze(-1)  # (batch, slots, 1)
        s = x.slots * mask
        summed, counts = torch.zeros_like(s), torch.zeros_like(mask)
        for offset in range(1, self.window + 1):  # neighbours only, not the slot itself
            summed[:, offset:] += s[:, :-offset]
            summed[:, :-offset] += s[:, offset:]
            counts[:, offset:] += mask[:, :-offset]
            counts[:, :-offset] += mask[:, offset:]
        neighbours = summed / counts.clamp(min=1)  # (batch, slots, dim)
        # No title: the document centroid stands in for what the document is about.
        title = torch.where(x.title_mask.unsqueeze(-1), x.title, masked_mean(x.slots, x.slot_mask, dim=1))
        q = x.query.unsqueeze(1)
        title = title.unsqueeze(1).expand_as(s)
        q_nbr = (q * neighbours).sum(-1, keepdim=True)
        q_title = (q * title).sum(-1, keepdim=True)
        q_slot = (q * s).sum(-1, keepdim=True)
        return PathwayOutput(
            self.head_on_slots(torch.cat([q * neighbours, q * title, q * s, q_nbr, q_title, q_slot], dim=-1), x)
        )
