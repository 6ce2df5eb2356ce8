"""Training losses: pure functions of the model's output and a batch's targets, st-moe-pytorch style.

`training_losses` is the multi-task objective, returned as a `TrainingLosses` named tuple:
listwise ranking of each query's positive over its hard negatives, pointwise document BCE, slot
BCE and listwise slot ranking, stance, and the router's auxiliary losses. The auxiliary losses are
computed here, from the routing the model returns, so inference never pays for them. The trainer
passes the weights (`LossWeights`) from its `TrainingArguments`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

import torch
from torch import nn

if TYPE_CHECKING:
    from .model import ModelOutput


class LossWeights(NamedTuple):
    """Each term's weight in the total; the ranking and slot BCE terms weigh 1."""

    document: float  # pointwise BCE on document logits
    slot_ranking: float  # listwise CE over each labelled document's slots
    stance: float  # CE of the stance-judging pathway's head
    load_balancing: float  # Switch load balancing of the gate
    z_loss: float  # ST-MoE router z-loss


class LossTargets(NamedTuple):
    """What one training batch should score."""

    ranked_rows: int  # the first rows: per query its positive, then `group - 1` hard negatives
    group: int  # rows per ranked query
    slot_mask: torch.Tensor  # (batch, slots) True on real slots
    slot_target: torch.Tensor  # (batch, slots) 1.0 on the rationale slots of relevant documents
    slot_weight: torch.Tensor  # (batch, slots) each slot's BCE weight (0 where it teaches nothing)
    stance: torch.Tensor  # (batch, slots) int64 stance labels; -1 = unlabelled


class TrainingLosses(NamedTuple):
    """The weighted total and each term, unweighted."""

    loss: torch.Tensor
    ranking: torch.Tensor
    document: torch.Tensor
    slot: torch.Tensor
    slot_ranking: torch.Tensor
    stance: torch.Tensor
    balance: torch.Tensor
    z: torch.Tensor


def training_losses(output: "ModelOutput", targets: LossTargets, weights: LossWeights) -> TrainingLosses:
    """The multi-task loss of one batch (every term a scalar tensor; terms without labels are 0)."""
    ranked, slot_mask = targets.ranked_rows, targets.slot_mask
    ranking = output.doc_logits.new_zeros(())
    if ranked:
        doc_logits = output.doc_logits[:ranked].view(-1, targets.group)  # (queries, group): the positive is column 0
        ranking = nn.functional.cross_entropy(doc_logits, doc_logits.new_zeros(doc_logits.shape[0], dtype=torch.long))
    relevant = torch.zeros_like(output.doc_logits)  # unanswered documents (after the ranked rows) are not relevant
    relevant[: ranked : targets.group] = 1.0
    document = nn.functional.binary_cross_entropy_with_logits(output.doc_logits, relevant)
    logits = output.slot_logits.masked_fill(~slot_mask, 0.0)
    bce = nn.functional.binary_cross_entropy_with_logits(logits, targets.slot_target, reduction="none")
    slot = (bce * targets.slot_weight).sum() / targets.slot_weight.sum().clamp(min=1e-6)
    labelled = targets.slot_target.sum(-1) > 0  # (batch,) relevant documents with rationale labels
    slot_ranking = logits.new_zeros(())
    if labelled.any():
        target = targets.slot_target[labelled]
        real = slot_mask[labelled]
        # Softmax over real slots only, whatever the logits on padding (the model's are -inf, but the mask decides).
        scores = output.slot_logits[labelled].masked_fill(~real, float("-inf"))
        log_probs = torch.log_softmax(scores, dim=-1).masked_fill(~real, 0.0)
        slot_ranking = -((log_probs * target).sum(-1) / target.sum(-1).clamp(min=1)).mean()
    stance = logits.new_zeros(())
    if output.stance_logits is not None:
        labels = targets.stance[output.stance_rows]  # (rows that ran the stance-judging pathway, slots)
        if (labels >= 0).any():
            stance = nn.functional.cross_entropy(output.stance_logits.flatten(0, 1), labels.flatten(), ignore_index=-1)
    routing = output.routing
    row_weights = slot_mask.sum(-1)  # each query counts once per real slot, never for padding
    balance = load_balancing_loss(
        routing.router_probs, routing.selected_pathways, routing.router_probs.shape[-1], row_weights
    )
    z = router_z_loss(routing.router_logits, row_weights)
    total = (
        ranking
        + weights.document * document
        + slot
        + weights.slot_ranking * slot_ranking
        + weights.stance * stance
        + weights.load_balancing * balance
        + weights.z_loss * z
    )
    return TrainingLosses(total, ranking, document, slot, slot_ranking, stance, balance, z)


def load_balancing_loss(
    router_probs: torch.Tensor,
    selected_pathways: torch.Tensor,
    num_pathways: int,
    row_weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """Switch Transformer auxiliary load-balancing loss (Fedus et al. 2021, eq. 4), for top-k routing.

    `N * sum_i f_i * P_i`, where `f_i` is the share of routing assignments that went to pathway i
    and `P_i` the mean router probability of pathway i. It is 1.0 for perfectly balanced routing
    and grows to N when everything goes to one pathway.

    Args:
        router_probs: (rows, pathways) softmax router probabilities.
        selected_pathways: (rows, k) indices chosen per row.
        num_pathways: N.
        row_weights: (rows,) how many real units each row stands for (its real slots), so that
            padding never counts; None weighs rows equally.

    Returns:
        A scalar tensor.
    """
    if row_weights is None:
        row_weights = torch.ones(router_probs.shape[0], device=router_probs.device)
    row_weights = row_weights.float()
    total = row_weights.sum().clamp(min=1e-9)
    assignments = nn.functional.one_hot(selected_pathways, num_pathways).float().sum(1)  # (rows, pathways)
    tokens_per_pathway = (assignments * row_weights[:, None]).sum(0) / (total * selected_pathways.shape[1])
    prob_per_pathway = (router_probs * row_weights[:, None]).sum(0) / total
    return num_pathways * (tokens_per_pathway * prob_per_pathway).sum()


def router_z_loss(router_logits: torch.Tensor, row_weights: torch.Tensor | None = None) -> torch.Tensor:
    """Router z-loss (Zoph et al. 2022, ST-MoE, eq. 5): mean squared log-partition of the router logits.

    Keeps the logits small so the float32 softmax stays well conditioned.
    """
    z = torch.logsumexp(router_logits.float(), dim=-1) ** 2  # (rows,)
    if row_weights is None:
        return z.mean()
    row_weights = row_weights.float()
    return (z * row_weights).sum() / row_weights.sum().clamp(min=1e-9)
