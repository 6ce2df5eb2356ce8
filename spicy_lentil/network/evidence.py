"""Zero-shot evidence: what a slot's relevance is before any pathway has a say.

The relevance field of a residual model (`config.zero_shot_residual`) starts from this evidence and
the pathways add a bounded correction. Where the pathways have nothing to add (text unlike any
training domain), the field falls back to the encoder's cosine and the lexical overlap, which hold
on any text, instead of to one corpus's habits (layout, label rate, salience of findings).
"""

from __future__ import annotations

import torch
from torch import nn

from ..pathways.base import IdfTable, PathwayInput, query_per_token, segment_sum

EVIDENCE_FEATURES = ("cosine", "lexical")


def lexical_overlap(x: PathwayInput, idf: torch.Tensor) -> torch.Tensor:
    """(batch, slots) IDF-weighted share of the query's word pieces that occur in the slot, in [0, 1].

    Args:
        x: the batch.
        idf: (vocab,) inverse document frequency of every token id (0 for special tokens).
    """
    q_ids = x.query_ids
    q_valid = q_ids >= 0  # (batch, q_tokens)
    token_q_ids = query_per_token(q_ids, x)  # (tokens or 1, q_tokens)
    match = (x.token_ids.unsqueeze(-1) == token_q_ids) & (x.token_ids >= 0).unsqueeze(-1) & (token_q_ids >= 0)
    present = segment_sum(match.float(), x) > 0  # (batch, slots, q_tokens)
    weights = idf[q_ids.clamp(min=0)] * q_valid  # (batch, q_tokens)
    return (present * weights.unsqueeze(1)).sum(-1) / weights.sum(-1, keepdim=True).clamp(min=1e-6)


class ZeroShotEvidence(IdfTable, nn.Module):
    """A slot logit from the slot's cosine to the query and its lexical overlap: `w . [cos, lexical] + b`.

    Three numbers, fitted with the rest of the model on the training mixture; the IDF table is
    filled from the training corpora (`fit`) and travels with the checkpoint.

    Args:
        vocab_size: size of the encoder tokenizer's vocabulary.
    """

    def __init__(self, vocab_size: int) -> None:
        super().__init__()
        self.register_buffer("idf", torch.ones(vocab_size))
        self.combine = nn.Linear(len(EVIDENCE_FEATURES), 1)
        with torch.no_grad():  # logit 0 near cosine 0.5: the level MiniLM gives a sentence on the query's topic
            self.combine.weight.copy_(torch.tensor([[10.0, 2.0]]))
            self.combine.bias.fill_(-6.0)

    def features(self, x: PathwayInput) -> torch.Tensor:
        """(batch, slots, features) the evidence features, in `EVIDENCE_FEATURES` order."""
        cosine = torch.einsum("bd,bsd->bs", x.query, x.slots)  # (batch, slots) both L2-normalised
        return torch.stack([cosine, lexical_overlap(x, self.idf)], dim=-1)

    def forward(self, x: PathwayInput) -> torch.Tensor:
        """(batch, slots) the evidence logit of every slot (padding included; the caller masks it)."""
        return self.combine(self.features(x)).squeeze(-1)
