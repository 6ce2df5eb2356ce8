"""The training objective: a pure function of the model's output, weighted by the training arguments."""

import dataclasses
import json

import pytest
import torch

from spicy_lentil.network.config import SpicyLentilConfig
from spicy_lentil.network.losses import LossTargets, load_balancing_loss, router_z_loss, training_losses
from spicy_lentil.network.model import SpicyLentilModel
from spicy_lentil.training.trainer import TrainingArguments
from tests.conftest import make_input


def _output_and_targets():
    torch.manual_seed(0)
    x = make_input(batch=4, slots=5, padded_row=3, padded_from=2)
    model = SpicyLentilModel(SpicyLentilConfig(pathways_per_query=2)).train()
    with torch.no_grad():
        output = model(x)
    slot_target = torch.zeros(x.slot_mask.shape)
    slot_target[0, 1] = 1.0  # row 0 is the positive of a query whose negatives are rows 1 and 2
    slot_weight = x.slot_mask.float()
    stance = torch.full(x.slot_mask.shape, -1, dtype=torch.long)
    return output, LossTargets(3, 3, x.slot_mask, slot_target, slot_weight, stance), x


def test_total_is_the_weighted_sum_of_the_terms():
    output, targets, _ = _output_and_targets()
    args = TrainingArguments(output="unused")
    losses = training_losses(output, targets, args.loss_weights())
    expected = (
        losses.ranking
        + args.document_weight * losses.document
        + losses.slot
        + args.slot_ranking_weight * losses.slot_ranking
        + args.stance_weight * losses.stance
        + args.load_balancing_weight * losses.balance
        + args.z_loss_weight * losses.z
    )
    assert torch.allclose(losses.loss, expected)
    assert all(torch.isfinite(v) for v in losses) and float(losses.ranking) > 0 and float(losses.slot_ranking) > 0
    heavier = training_losses(output, targets, dataclasses.replace(args, z_loss_weight=1.0).loss_weights())
    assert float(heavier.loss - losses.loss) == pytest.approx((1.0 - args.z_loss_weight) * float(losses.z), rel=1e-4)


def test_auxiliary_losses_come_from_the_routing_and_skip_padding():
    output, targets, x = _output_and_targets()
    losses = training_losses(output, targets, TrainingArguments(output="unused").loss_weights())
    real = x.slot_mask.sum(-1)
    routing = output.routing
    assert torch.allclose(losses.balance, load_balancing_loss(routing.router_probs, routing.selected_pathways, 9, real))
    assert torch.allclose(losses.z, router_z_loss(routing.router_logits, real))
    assert not hasattr(output, "z_loss") and not hasattr(output, "load_balancing_loss")  # inference never pays


def test_checkpoints_that_saved_loss_weights_in_the_config_still_load(tmp_path):
    data = SpicyLentilConfig().to_dict() | {"load_balancing_weight": 0.01, "z_loss_weight": 0.001}
    (tmp_path / "config.json").write_text(json.dumps(data))
    assert SpicyLentilConfig.load(tmp_path / "config.json") == SpicyLentilConfig()
