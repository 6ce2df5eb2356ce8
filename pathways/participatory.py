"""Participatory knowing: do the words of query and slot engage each other?"""

import torch
from torch import nn

from .base import Pathway, PathwayInput, PathwayOutput, mlp, segment_max, token_products


class Participatory(Pathway):
    """Token-level late interaction (ColBERT's MaxSim) between query tokens and slot tokens.

    Each query token finds its best partner in the slot; a learned weight per query token says how
    much that token's engagement counts; which query tokens engaged, and how strongly, feeds the head.
    """

    name = "participatory"
    question = "Do the words of query and slot engage each other?"

    def __init__(self, embedding_dim: int, hidden_dim: int, dropout: float = 0.1) -> None:
        super().__init__(embedding_dim, hidden_dim, dropout)
        self.token_weight = nn.Linear(embedding_dim, 1, bias=False)  # a bias would cancel in the softmax
        self.interaction = nn.Linear(embedding_dim, hidden_dim)
        self.head = mlp(hidden_dim + 3, hidden_dim, dropout)

    def forward(self, x: PathwayInput) -> PathwayOutput:
        q = nn.functional.normalize(x.query_tokens, dim=-1)  # (batch, q_tokens, dim)
        sim = token_products(x, q[0] if x.shared_query else q) * x.token_scale.unsqueeze(
            -1
        )  # (tokens, q_tokens) cosines
        maxsim = segment_max(sim, x).clamp(min=-1.0)  # (batch, slots, q_tokens)
        q_mask = x.query_token_mask.unsqueeze(1)  # (batch, 1, q_tokens)
        weight_logits = self.token_weight(x.query_tokens).squeeze(-1).masked_fill(~x.query_token_mask, -1e4)
        weights = torch.softmax(weight_logits, dim=-1).unsqueeze(1)  # (batch, 1, q_tokens)
        weighted = (weights * maxsim).sum(-1, keepdim=True)
        plain = (maxsim * q_mask).sum(-1, keepdim=True) / q_mask.sum(-1, keepdim=True).clamp(min=1)
        best = maxsim.masked_fill(~q_mask, -1.0).max(dim=-1, keepdim=True).values
        engaged = torch.einsum("bsq,bqd->bsd", weights * maxsim.clamp(min=0.0), q)  # which query words found partners
        return PathwayOutput(
            self.head_on_slots(torch.cat([self.interaction(engaged), weighted, plain, best], dim=-1), x)
        )
