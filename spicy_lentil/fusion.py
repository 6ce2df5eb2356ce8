"""Where the active pathways meet: the Shinjuku null point, and the seed's simpler fusions for comparison.

Every fusion takes the routing-weighted pathway outputs `(batch, slots, pathways, hidden)` (zeros
for pathways that did not run) and returns the synthesised slot states `(batch, slots, hidden)`
and, per slot, a weight on each pathway `(batch, slots, pathways)` (0.0 for inactive ones).
"""

from __future__ import annotations

import torch
from torch import nn

from .gate import Routing


def _masked_softmax(logits: torch.Tensor, active: torch.Tensor) -> torch.Tensor:
    return torch.softmax(logits.masked_fill(~active, float("-inf")), dim=-1)


class NullPoint(nn.Module):
    """The Shinjuku null point: the active pathways attend to each other, one head per pathway.

    Only the k selected pathways enter the attention (gathered, not merely masked), so its cost
    grows with k. Each pathway gets its own projection and identity embedding; a synthesizer MLP
    reads the attended states of all pathways (inactive ones count as zero) and adds to the
    routing-weighted sum of the pathway outputs.
    """

    def __init__(self, num_pathways: int, hidden_dim: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.num_pathways = num_pathways
        self.projection = nn.Parameter(torch.stack([torch.eye(hidden_dim)] * num_pathways))  # (pathways, hidden, hidden)
        self.identity = nn.Parameter(torch.randn(num_pathways, hidden_dim) * 0.02)  # (pathways, hidden)
        self.attention = nn.MultiheadAttention(hidden_dim, num_heads=num_pathways, dropout=dropout, batch_first=True)
        self.norm = nn.LayerNorm(hidden_dim)
        # The synthesizer reads the concatenation of all pathways' states (inactive ones zero). Its
        # first layer is kept as per-pathway blocks so that only the k active blocks are multiplied.
        self.synth_in = nn.Parameter(torch.randn(num_pathways, hidden_dim, 2 * hidden_dim) / (num_pathways * hidden_dim) ** 0.5)
        self.synth_bias = nn.Parameter(torch.zeros(2 * hidden_dim))
        self.synthesizer = nn.Sequential(nn.GELU(), nn.Dropout(dropout), nn.Linear(2 * hidden_dim, hidden_dim))
        self.out_norm = nn.LayerNorm(hidden_dim)

    def forward(self, outputs: torch.Tensor, routing: Routing) -> tuple[torch.Tensor, torch.Tensor]:
        batch, slots, pathways, hidden = outputs.shape
        selected = routing.selected_pathways  # (batch, k)
        k = selected.shape[1]
        index = selected[:, None, :, None].expand(batch, slots, k, hidden)
        gathered = outputs.gather(2, index)  # (batch, slots, k, hidden)
        # One query scoring many documents routes every row alike: then gather each weight once,
        # not once per row (the per-row copies cost more than the multiplications).
        shared = bool((selected == selected[:1]).all())
        if shared:
            h = torch.einsum("bskh,khg->bskg", gathered, self.projection[selected[0]]) + self.identity[selected[0]]
        else:
            h = torch.einsum("bskh,bkhg->bskg", gathered, self.projection[selected]) + self.identity[selected].unsqueeze(1)
        attended, attention = self._attend(h)  # (batch, slots, k, hidden), (batch, slots, k, k)
        h = self.norm(h + attended)
        # Weight on each pathway: the attention it receives, averaged over the pathways looking.
        received = attention.mean(dim=2)  # (batch, slots, k)
        weights = outputs.new_zeros(batch, slots, pathways).scatter(2, selected[:, None, :].expand(batch, slots, k), received)
        if shared:
            synth = torch.einsum("bskh,khg->bsg", h, self.synth_in[selected[0]])
        else:
            synth = torch.einsum("bskh,bkhg->bsg", h, self.synth_in[selected])
        synth = synth + self.synth_bias  # (batch, slots, 2 * hidden)
        z = self.synthesizer(synth) + gathered.sum(dim=2)
        return self.out_norm(z), weights


    def _attend(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """`self.attention(h, h, h)` over each slot's k pathway states, and its head-averaged weights.

        The arithmetic of `nn.MultiheadAttention` (whose parameters it uses), one key position at a
        time: with k <= 9 positions, its thousands of k x k matrix products and the copies around
        them cost more on CPU (1.35x for k = 4) than these k broadcast products.
        """
        mha = self.attention
        *lead, k, hidden = h.shape
        heads, head_dim = mha.num_heads, hidden // mha.num_heads
        query, key, value = nn.functional.linear(h, mha.in_proj_weight, mha.in_proj_bias).chunk(3, dim=-1)  # (..., k, hidden)
        query = query * head_dim**-0.5
        scores = torch.stack(
            [(query * key[..., j: j + 1, :]).view(*lead, k, heads, head_dim).sum(-1) for j in range(k)], dim=-2
        )  # (..., k looking, k looked at, heads)
        weights = nn.functional.dropout(torch.softmax(scores, dim=-2), mha.dropout, self.training)
        attended = sum(
            weights[..., j, :].unsqueeze(-1) * value[..., j: j + 1, :].view(*lead, 1, heads, head_dim) for j in range(k)
        )  # (..., k, heads, head_dim)
        return mha.out_proj(attended.reshape(*lead, k, hidden)), weights.mean(-1)


class ConcatLinear(nn.Module):
    """Concatenate all pathway outputs (inactive ones zero) and project: the seed's plainest fusion."""

    def __init__(self, num_pathways: int, hidden_dim: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.linear = nn.Linear(num_pathways * hidden_dim, hidden_dim)
        self.norm = nn.LayerNorm(hidden_dim)

    def forward(self, outputs: torch.Tensor, routing: Routing) -> tuple[torch.Tensor, torch.Tensor]:
        batch, slots, pathways, hidden = outputs.shape
        z = self.norm(self.linear(outputs.reshape(batch, slots, pathways * hidden)))
        return z, routing.dense_weights[:, None, :].expand(batch, slots, pathways).to(outputs.dtype)


class LearnedWeights(nn.Module):
    """A learned softmax weight per pathway, renormalised over the active ones: a weighted average."""

    def __init__(self, num_pathways: int, hidden_dim: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.logits = nn.Parameter(torch.zeros(num_pathways))
        self.norm = nn.LayerNorm(hidden_dim)

    def forward(self, outputs: torch.Tensor, routing: Routing) -> tuple[torch.Tensor, torch.Tensor]:
        batch, slots, pathways, _ = outputs.shape
        alpha = _masked_softmax(self.logits.expand(batch, pathways), routing.active)  # (batch, pathways)
        z = self.norm(torch.einsum("bsph,bp->bsh", outputs, alpha))
        return z, alpha[:, None, :].expand(batch, slots, pathways)


class GatedUnit(nn.Module):
    """Gated multimodal unit (Arevalo et al. 2017) for P inputs: `sum_p g_p * tanh(W_p h_p)`, g a softmax gate.

    With two inputs it is the paper's `z*tanh(Wa a) + (1-z)*tanh(Wb b)`.
    """

    def __init__(self, num_pathways: int, hidden_dim: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.transform = nn.Parameter(torch.randn(num_pathways, hidden_dim, hidden_dim) / hidden_dim**0.5)
        self.gate = nn.Linear(num_pathways * hidden_dim, num_pathways)
        self.norm = nn.LayerNorm(hidden_dim)

    def forward(self, outputs: torch.Tensor, routing: Routing) -> tuple[torch.Tensor, torch.Tensor]:
        batch, slots, pathways, hidden = outputs.shape
        g = _masked_softmax(self.gate(outputs.reshape(batch, slots, pathways * hidden)), routing.active[:, None, :])
        transformed = torch.tanh(torch.einsum("bsph,phg->bspg", outputs, self.transform))
        return self.norm((g.unsqueeze(-1) * transformed).sum(dim=2)), g


FUSION_CLASSES = {
    "null_point": NullPoint,
    "concat_linear": ConcatLinear,
    "learned_weights": LearnedWeights,
    "gated_unit": GatedUnit,
}


def build_fusion(name: str, num_pathways: int, hidden_dim: int, dropout: float) -> nn.Module:
    return FUSION_CLASSES[name](num_pathways, hidden_dim, dropout)
