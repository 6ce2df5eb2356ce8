"""Where the active pathways meet: the Shinjuku null point, and the seed's simpler fusions for comparison.

Every fusion takes the routing-weighted outputs of the active pathways only, `(batch, slots, k,
hidden)` with column j from pathway `routing.selected_pathways[:, j]` (a pathway that did not run
has no output at all, and no block of zeros is multiplied in its place), and returns the
synthesised slot states `(batch, slots, hidden)` and, per slot, a weight on each pathway
`(batch, slots, pathways)` (0.0 for inactive ones).
"""

from __future__ import annotations

import torch
from torch import nn

from .gate import Routing


def _routed_alike(selected: torch.Tensor) -> bool:
    """Every row selected the same pathways (one query scoring many documents)."""
    return bool((selected == selected[:1]).all())


def _each_pathway(active: torch.Tensor, weights: torch.Tensor, selected: torch.Tensor) -> torch.Tensor:
    """Each active pathway's output through its own matrix: `(batch, slots, k, in)` with `weights`
    `(pathways, in, out)` -> `(batch, slots, k, out)`.

    Rows routed alike gather the k matrices once, not once per row (the per-row copies cost more
    than the multiplications).
    """
    if _routed_alike(selected):
        return torch.einsum("bskh,khg->bskg", active, weights[selected[0]])
    return torch.einsum("bskh,bkhg->bskg", active, weights[selected])


def _blockwise(active: torch.Tensor, blocks: torch.Tensor, selected: torch.Tensor) -> torch.Tensor:
    """A linear map of the concatenation of all pathways' outputs (inactive ones zero), from the active
    blocks alone: `(batch, slots, k, in)` with `blocks` `(pathways, in, out)` -> `(batch, slots, out)`."""
    if _routed_alike(selected):
        return active.flatten(-2) @ blocks[selected[0]].flatten(0, 1)  # one (k * in, out) product
    return torch.einsum("bskh,bkhg->bsg", active, blocks[selected])


def _spread(values: torch.Tensor, selected: torch.Tensor, num_pathways: int) -> torch.Tensor:
    """Per-slot values of the k active pathways `(batch, slots, k)` -> `(batch, slots, pathways)`, 0.0 elsewhere."""
    batch, slots, k = values.shape
    return values.new_zeros(batch, slots, num_pathways).scatter(2, selected[:, None, :].expand(batch, slots, k), values)


class NullPoint(nn.Module):
    """The Shinjuku null point: the active pathways attend to each other, one head per pathway.

    Only the k selected pathways enter the attention, so its cost grows with k. Each pathway gets
    its own projection and identity embedding; a synthesizer MLP reads the attended states of all
    pathways (inactive ones count as zero) and adds to the routing-weighted sum of the pathway outputs.
    """

    def __init__(self, num_pathways: int, hidden_dim: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.num_pathways = num_pathways
        self.projection = nn.Parameter(
            torch.stack([torch.eye(hidden_dim)] * num_pathways)
        )  # (pathways, hidden, hidden)
        self.identity = nn.Parameter(torch.randn(num_pathways, hidden_dim) * 0.02)  # (pathways, hidden)
        self.attention = nn.MultiheadAttention(hidden_dim, num_heads=num_pathways, dropout=dropout, batch_first=True)
        self.norm = nn.LayerNorm(hidden_dim)
        # The synthesizer reads the concatenation of all pathways' states (inactive ones zero). Its
        # first layer is kept as per-pathway blocks so that only the k active blocks are multiplied.
        self.synth_in = nn.Parameter(
            torch.randn(num_pathways, hidden_dim, 2 * hidden_dim) / (num_pathways * hidden_dim) ** 0.5
        )
        self.synth_bias = nn.Parameter(torch.zeros(2 * hidden_dim))
        self.synthesizer = nn.Sequential(nn.GELU(), nn.Dropout(dropout), nn.Linear(2 * hidden_dim, hidden_dim))
        self.out_norm = nn.LayerNorm(hidden_dim)

    def forward(self, active: torch.Tensor, routing: Routing) -> tuple[torch.Tensor, torch.Tensor]:
        selected = routing.selected_pathways  # (batch, k)
        identity = self.identity[selected].unsqueeze(1)  # (batch, 1, k, hidden)
        h = _each_pathway(active, self.projection, selected) + identity  # (batch, slots, k, hidden)
        attended, attention = self._attend(h)  # (batch, slots, k, hidden), (batch, slots, k, k)
        h = self.norm(h + attended)
        # Weight on each pathway: the attention it receives, averaged over the pathways looking.
        weights = _spread(attention.mean(dim=2), selected, self.num_pathways)
        synth = _blockwise(h, self.synth_in, selected) + self.synth_bias  # (batch, slots, 2 * hidden)
        z = self.synthesizer(synth) + active.sum(dim=2)
        return self.out_norm(z), weights

    def _attend(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """`self.attention(h, h, h)` over each slot's k pathway states, and its head-averaged weights.

        The arithmetic of `nn.MultiheadAttention` (whose parameters it uses), one key position at a
        time: with k <= 9 positions, its thousands of k x k matrix products and the copies around
        them cost more on CPU than these k broadcast products.
        """
        mha = self.attention
        *lead, k, hidden = h.shape
        heads, head_dim = mha.num_heads, hidden // mha.num_heads
        query, key, value = nn.functional.linear(h, mha.in_proj_weight, mha.in_proj_bias).chunk(
            3, dim=-1
        )  # (..., k, hidden)
        query = query * head_dim**-0.5
        scores = torch.stack(
            [(query * key[..., j : j + 1, :]).view(*lead, k, heads, head_dim).sum(-1) for j in range(k)], dim=-2
        )  # (..., k looking, k looked at, heads)
        weights = nn.functional.dropout(torch.softmax(scores, dim=-2), mha.dropout, self.training)
        attended = sum(
            weights[..., j, :].unsqueeze(-1) * value[..., j : j + 1, :].view(*lead, 1, heads, head_dim)
            for j in range(k)
        )  # (..., k, heads, head_dim)
        return mha.out_proj(attended.reshape(*lead, k, hidden)), weights.mean(-1)


class ConcatLinear(nn.Module):
    """Concatenate all pathway outputs (inactive ones zero) and project: the seed's plainest fusion."""

    def __init__(self, num_pathways: int, hidden_dim: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.num_pathways = num_pathways
        self.linear = nn.Linear(num_pathways * hidden_dim, hidden_dim)
        self.norm = nn.LayerNorm(hidden_dim)

    def forward(self, active: torch.Tensor, routing: Routing) -> tuple[torch.Tensor, torch.Tensor]:
        batch, slots, _, hidden = active.shape
        blocks = self.linear.weight.view(hidden, self.num_pathways, hidden).permute(1, 2, 0)  # (pathways, in, out)
        z = self.norm(_blockwise(active, blocks, routing.selected_pathways) + self.linear.bias)
        return z, routing.dense_weights[:, None, :].expand(batch, slots, self.num_pathways).to(active.dtype)


class LearnedWeights(nn.Module):
    """A learned softmax weight per pathway, renormalised over the active ones: a weighted average."""

    def __init__(self, num_pathways: int, hidden_dim: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.num_pathways = num_pathways
        self.logits = nn.Parameter(torch.zeros(num_pathways))
        self.norm = nn.LayerNorm(hidden_dim)

    def forward(self, active: torch.Tensor, routing: Routing) -> tuple[torch.Tensor, torch.Tensor]:
        batch, slots, k, _ = active.shape
        alpha = torch.softmax(self.logits[routing.selected_pathways], dim=-1)  # (batch, k)
        z = self.norm(torch.einsum("bskh,bk->bsh", active, alpha))
        return z, _spread(alpha[:, None, :].expand(batch, slots, k), routing.selected_pathways, self.num_pathways)


class GatedUnit(nn.Module):
    """Gated multimodal unit (Arevalo et al. 2017) for P inputs: `sum_p g_p * tanh(W_p h_p)`, g a softmax gate.

    With two inputs it is the paper's `z*tanh(Wa a) + (1-z)*tanh(Wb b)`. The gate reads all P
    inputs (inactive ones zero) and weighs the active ones only.
    """

    def __init__(self, num_pathways: int, hidden_dim: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.num_pathways = num_pathways
        self.transform = nn.Parameter(torch.randn(num_pathways, hidden_dim, hidden_dim) / hidden_dim**0.5)
        self.gate = nn.Linear(num_pathways * hidden_dim, num_pathways)
        self.norm = nn.LayerNorm(hidden_dim)

    def forward(self, active: torch.Tensor, routing: Routing) -> tuple[torch.Tensor, torch.Tensor]:
        batch, slots, k, hidden = active.shape
        selected = routing.selected_pathways
        blocks = self.gate.weight.view(self.num_pathways, self.num_pathways, hidden).permute(
            1, 2, 0
        )  # (pathways, in, gate)
        logits = _blockwise(active, blocks, selected) + self.gate.bias  # (batch, slots, pathways)
        g = torch.softmax(logits.gather(2, selected[:, None, :].expand(batch, slots, k)), dim=-1)  # (batch, slots, k)
        transformed = torch.tanh(_each_pathway(active, self.transform, selected))  # (batch, slots, k, hidden)
        return self.norm((g.unsqueeze(-1) * transformed).sum(dim=2)), _spread(g, selected, self.num_pathways)


FUSION_CLASSES = {
    "null_point": NullPoint,
    "concat_linear": ConcatLinear,
    "learned_weights": LearnedWeights,
    "gated_unit": GatedUnit,
}


def build_fusion(name: str, num_pathways: int, hidden_dim: int, dropout: float) -> nn.Module:
    return FUSION_CLASSES[name](num_pathways, hidden_dim, dropout)
