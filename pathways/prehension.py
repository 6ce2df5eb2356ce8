"""Prehension: is there a literal grip, shared terms?"""

import torch
from torch import nn

from .base import IdfTable, Pathway, PathwayInput, PathwayOutput, mlp, query_per_token, segment_sum, token_slot_index


class Prehension(IdfTable, Pathway):
    """Lexical grip: IDF-weighted overlap and a BM25 score of the slot, over the encoder's word pieces.

    The IDF table is a buffer filled from the training corpus (`fit`), so it travels with the
    checkpoint; slot length is normalised against the document's own average slot length.
    """

    name = "prehension"
    question = "Is there a literal grip: does the slot share the query's (rare) terms?"
    k1, b = 1.2, 0.75
    config_options = ("vocab_size",)

    def __init__(self, embedding_dim: int, hidden_dim: int, dropout: float = 0.1, vocab_size: int = 30522) -> None:
        super().__init__(embedding_dim, hidden_dim, dropout)
        self.register_buffer("idf", torch.ones(vocab_size))
        self.matched = nn.Linear(embedding_dim, hidden_dim)
        self.head = mlp(hidden_dim + 6, hidden_dim, dropout)

    @staticmethod
    def _gripped(hit: torch.Tensor, x: PathwayInput) -> torch.Tensor:
        """What was gripped: per slot, the mean embedding of its tokens that match some query token.

        Few tokens match, so only those are gathered (never a masked copy of every token).
        """
        batch, slots = x.slot_mask.shape
        positions = hit.nonzero().squeeze(1)  # (hits,)
        target = token_slot_index(x)[positions]  # flat (batch * slots) slot index of each hit
        sums = x.tokens.new_zeros(batch * slots, x.tokens.shape[-1]).index_add_(0, target, x.tokens[positions])
        counts = x.tokens.new_zeros(batch * slots).index_add_(0, target, x.tokens.new_ones(target.shape[0]))
        return (sums / counts.clamp(min=1).unsqueeze(-1)).view(batch, slots, -1)

    def forward(self, x: PathwayInput) -> PathwayOutput:
        q_ids = x.query_ids
        q_valid = q_ids >= 0  # (batch, q_tokens)
        t_valid = x.token_ids >= 0  # (tokens,)
        token_q_ids = query_per_token(q_ids, x)  # (tokens or 1, q_tokens)
        match = (
            (x.token_ids.unsqueeze(-1) == token_q_ids) & t_valid.unsqueeze(-1) & (token_q_ids >= 0)
        )  # (tokens, q_tokens)
        tf = segment_sum(match.float(), x)  # (batch, slots, q_tokens): occurrences of each query term in each slot
        present = (tf > 0).float()
        idf = self.idf[q_ids.clamp(min=0)] * q_valid  # (batch, q_tokens)
        n_query = q_valid.sum(-1, keepdim=True).clamp(min=1).unsqueeze(1)  # (batch, 1, 1)
        overlap = present.sum(-1, keepdim=True) / n_query
        idf_overlap = (present * idf.unsqueeze(1)).sum(-1, keepdim=True) / idf.sum(-1, keepdim=True).clamp(
            min=1e-6
        ).unsqueeze(1)
        length = segment_sum(t_valid.float().unsqueeze(-1), x).squeeze(-1)  # (batch, slots)
        mean_length = (length * x.slot_mask).sum(-1, keepdim=True) / x.slot_mask.sum(-1, keepdim=True).clamp(min=1)
        norm = self.k1 * (1 - self.b + self.b * length / mean_length.clamp(min=1))  # (batch, slots)
        bm25 = (idf.unsqueeze(1) * tf * (self.k1 + 1) / (tf + norm.unsqueeze(-1))).sum(-1, keepdim=True)
        doc_best = bm25.masked_fill(~x.slot_mask.unsqueeze(-1), 0).amax(dim=1, keepdim=True)
        relative = bm25 / doc_best.clamp(min=1e-6)
        gripped = self._gripped(match.any(-1), x)  # (batch, slots, dim)
        features = torch.cat(
            [
                self.matched(gripped),
                overlap,
                idf_overlap,
                torch.log1p(bm25),
                relative,
                torch.log1p(length).unsqueeze(-1),
                (present.sum(-1, keepdim=True) == n_query).float(),
            ],
            dim=-1,
        )
        return PathwayOutput(self.head_on_slots(features, x))
