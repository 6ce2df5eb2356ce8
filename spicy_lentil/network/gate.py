"""The gate: a mixture-of-experts router on the query that picks the top-k of the nine pathways."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class Routing:
    """The gate's decision for a batch of queries."""

    router_logits: torch.Tensor  # (batch, pathways) before softmax (noise included while training)
    router_probs: torch.Tensor  # (batch, pathways) float32 softmax over all pathways
    routing_weights: torch.Tensor  # (batch, k) renormalised weights of the selected pathways, highest first
    selected_pathways: torch.Tensor  # (batch, k) indices of the selected pathways

    def select(self, rows: slice | torch.Tensor) -> "Routing":
        """The routing of some rows."""
        return Routing(
            self.router_logits[rows], self.router_probs[rows], self.routing_weights[rows], self.selected_pathways[rows]
        )

    @property
    def dense_weights(self) -> torch.Tensor:
        """(batch, pathways): routing weight of every pathway, 0.0 for those not selected."""
        dense = torch.zeros_like(self.router_probs)
        return dense.scatter(1, self.selected_pathways, self.routing_weights.to(dense.dtype))

    @property
    def active(self) -> torch.Tensor:
        """(batch, pathways) bool: which pathways run for each row."""
        active = torch.zeros_like(self.router_probs, dtype=torch.bool)
        return active.scatter(1, self.selected_pathways, True)


class Gate(nn.Module):
    """Noisy top-k gating (Shazeer et al. 2017) on the query embedding.

    Args:
        embedding_dim: width of the query embedding.
        num_pathways: number of pathways to route between.
        top_k: pathways selected per query where a call names no `k` (the config's `pathways_per_query`).
        noisy: add learned-scale Gaussian noise to the logits while training.
    """

    def __init__(self, embedding_dim: int, num_pathways: int, top_k: int, noisy: bool = True) -> None:
        super().__init__()
        self.router = nn.Linear(embedding_dim, num_pathways, bias=False)
        self.noise = nn.Linear(embedding_dim, num_pathways, bias=False)
        nn.init.zeros_(self.noise.weight)
        self.num_pathways = num_pathways
        self.top_k = top_k
        self.noisy = noisy

    def forward(self, query: torch.Tensor, k: int | None = None) -> Routing:
        """Routes each query `(batch, embedding_dim)` to its top `k` pathways (None: `top_k`)."""
        router_logits = self.router(query)  # (batch, pathways)
        if self.training and self.noisy:
            scale = nn.functional.softplus(self.noise(query)) + 1e-2
            router_logits = router_logits + torch.randn_like(router_logits) * scale
        # float32 softmax: routing decisions must not flip with half-precision rounding.
        router_probs = torch.softmax(router_logits, dim=-1, dtype=torch.float32)
        k = self.top_k if k is None else k
        routing_weights, selected_pathways = torch.topk(router_probs, k, dim=-1)  # sorted, highest first
        routing_weights = routing_weights / routing_weights.sum(dim=-1, keepdim=True)
        return Routing(router_logits, router_probs, routing_weights, selected_pathways)


class RoutingStatistics:
    """Running counts of how often each pathway was chosen and with what mean weight."""

    def __init__(self, names: list[str]) -> None:
        self.names = list(names)
        self.reset()

    def reset(self) -> None:
        self.queries = 0
        self.selected = torch.zeros(len(self.names))
        self.weight_sum = torch.zeros(len(self.names))

    def update(self, routing: Routing) -> None:
        dense = routing.dense_weights.detach().float().cpu()
        self.queries += dense.shape[0]
        self.selected += (dense > 0).float().sum(0)
        self.weight_sum += dense.sum(0)

    def as_dict(self) -> dict:
        """`{"queries": n, "pathways": {name: {"selected_share", "mean_weight"}}}`."""
        n = max(self.queries, 1)
        return {
            "queries": self.queries,
            "pathways": {
                name: {
                    "selected_share": float(self.selected[i] / n),
                    "mean_weight": float(self.weight_sum[i] / max(float(self.selected[i]), 1.0)),
                }
                for i, name in enumerate(self.names)
            },
        }
