"""The training objective, pinned to values computed by hand from tiny explicit inputs.

The batch: one ranked query (row 0 its positive, row 1 a hard negative) and one unanswered
document (row 2); three slots, of which row 0 has two real ones and row 2 one; three pathways, k = 1.
"""

import dataclasses
import json
from math import log

import pytest
import torch

from spicy_lentil.network.config import SpicyLentilConfig
from spicy_lentil.network.gate import Routing
from spicy_lentil.network.losses import LossTargets, LossWeights, load_balancing_loss, router_z_loss, training_losses
from spicy_lentil.network.model import ModelOutput

L3 = log(3.0)
PAD = float("-inf")  # what the model puts on padding slots

# Each term of the batch below, by hand:
RANKING = log(10 / 9)  # CE of [log 3, -log 3] with the positive first: softmax [3, 1/3] / (10/3), -log(9/10)
DOCUMENT = log(16 / 3) / 3  # BCE of [log 3, -log 3, log 2] against [1, 0, 0]: (log(4/3) + log(4/3) + log 3) / 3
# Slot BCE, weighted: row 0 log(4/3) (log 3 vs 1) + log 2 (0 vs 1), weights 1, 1; row 1 three log 2 at 0.5;
# row 2 log 4 (log 3 vs 0) at 1; padding weighs 0. (log(4/3) + 4.5 log 2) / 4.5
SLOT = log(2) + log(4 / 3) / 4.5
SLOT_RANKING = log(16 / 3) / 2  # row 0 only: softmax of [log 3, 0] is [3/4, 1/4], both targets: (log(4/3) + log 4) / 2
STANCE = log(6) / 2  # row 0: [0, 0, log 2] labelled 2 -> log 2, [0, 0, 0] labelled 0 -> log 3; -1 ignored
BALANCE = 327 / 288  # 3 * (f . P): f = [5/6, 0, 1/6] by real slots [2, 3, 1]; P = [55, 37, 52] / 144
Z = (2 * L3**2 + 3 * log(4) ** 2 + 1 * log(8) ** 2) / 6  # logsumexp of the rows: log 3, log 4, log 8; weights 2, 3, 1


def hand_batch(pad: float = PAD, stance_pad: float = 0.0) -> tuple[ModelOutput, LossTargets]:
    """The batch of the module docstring; `pad` is each padding slot's logit, `stance_pad` the ignored stance logits."""
    slot_mask = torch.tensor([[True, True, False], [True, True, True], [True, False, False]])
    slot_logits = torch.tensor([[L3, 0.0, pad], [0.0, 0.0, 0.0], [L3, pad, pad]])
    slot_target = torch.tensor([[1.0, 1.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    slot_weight = torch.tensor([[1.0, 1.0, 0.0], [0.5, 0.5, 0.5], [1.0, 0.0, 0.0]])
    stance = torch.tensor([[2, 0, -1], [-1, -1, -1], [-1, -1, -1]])
    stance_logits = torch.tensor(
        [
            [[0.0, 0.0, log(2)], [0.0, 0.0, 0.0], [stance_pad, -stance_pad, 0.0]],  # row 0
            [[stance_pad, 0.0, -stance_pad]] * 3,  # row 2: unlabelled
        ]
    )
    router_logits = torch.tensor([[0.0, 0.0, 0.0], [log(2), 0.0, 0.0], [0.0, 0.0, log(6)]])
    routing = Routing(
        router_logits=router_logits,
        router_probs=torch.tensor([[1 / 3, 1 / 3, 1 / 3], [1 / 2, 1 / 4, 1 / 4], [1 / 8, 1 / 8, 3 / 4]]),
        routing_weights=torch.ones(3, 1),
        selected_pathways=torch.tensor([[0], [0], [2]]),
    )
    output = ModelOutput(
        slot_logits=slot_logits,
        doc_logits=torch.tensor([L3, -L3, log(2)]),
        field=torch.zeros(3, 3),  # not read by the losses
        routing=routing,
        pathway_attention=torch.zeros(3, 3, 3),  # not read by the losses
        pooling_weights=torch.zeros(3, 3),  # not read by the losses
        stance_logits=stance_logits,
        stance_rows=torch.tensor([0, 2]),
    )
    return output, LossTargets(2, 2, slot_mask, slot_target, slot_weight, stance)


NO_WEIGHTS = LossWeights(document=0.0, slot_ranking=0.0, stance=0.0, load_balancing=0.0, z_loss=0.0)
WEIGHTS = LossWeights(document=0.5, slot_ranking=0.25, stance=2.0, load_balancing=0.1, z_loss=0.01)


def assert_hand_terms(losses):
    assert float(losses.ranking) == pytest.approx(RANKING, rel=1e-5)  # 0.105361
    assert float(losses.document) == pytest.approx(DOCUMENT, rel=1e-5)  # 0.557992
    assert float(losses.slot) == pytest.approx(SLOT, rel=1e-5)  # 0.757077
    assert float(losses.slot_ranking) == pytest.approx(SLOT_RANKING, rel=1e-5)  # 0.836988
    assert float(losses.stance) == pytest.approx(STANCE, rel=1e-5)  # 0.895880
    assert float(losses.balance) == pytest.approx(BALANCE, rel=1e-5)  # 1.135417
    assert float(losses.z) == pytest.approx(Z, rel=1e-5)  # 2.083902


def test_each_term_has_its_hand_computed_value():
    output, targets = hand_batch()
    assert_hand_terms(training_losses(output, targets, WEIGHTS))


def test_total_weighs_the_terms_by_the_loss_weights():
    output, targets = hand_batch()
    # Ranking and slot BCE always weigh 1: 0.105361 + 0.757077
    assert float(training_losses(output, targets, NO_WEIGHTS).loss) == pytest.approx(0.8624370, rel=1e-5)
    # 0.105361 + 0.5 * 0.557992 + 0.757077 + 0.25 * 0.836988 + 2 * 0.895880 + 0.1 * 1.135417 + 0.01 * 2.083902
    assert float(training_losses(output, targets, WEIGHTS).loss) == pytest.approx(3.2768203, rel=1e-5)


@pytest.mark.parametrize("pad", [PAD, 1e4, -1e4])
def test_padding_slots_change_no_term(pad):
    """Whatever the logits on padding slots (and the stance logits of unlabelled slots), each term keeps its value."""
    output, targets = hand_batch(pad=pad, stance_pad=abs(pad) if pad != PAD else 1e4)
    assert_hand_terms(training_losses(output, targets, WEIGHTS))


def test_terms_without_labels_are_zero():
    output, targets = hand_batch()
    output = dataclasses.replace(output, stance_logits=None, stance_rows=None)  # no stance-judging pathway ran
    unranked = LossTargets(0, 2, targets.slot_mask, torch.zeros(3, 3), targets.slot_weight, targets.stance)
    losses = training_losses(output, unranked, WEIGHTS)  # no ranked query, no rationale label
    assert float(losses.ranking) == 0.0 and float(losses.slot_ranking) == 0.0 and float(losses.stance) == 0.0
    # Nothing relevant now: BCE of [log 3, -log 3, log 2] against zeros: (log 4 + log(4/3) + log 3) / 3
    assert float(losses.document) == pytest.approx(log(16) / 3, rel=1e-5)
    output, targets = hand_batch()
    output = dataclasses.replace(output, stance_rows=torch.tensor([1, 2]))  # the positive did not judge stance
    assert float(training_losses(output, targets, WEIGHTS).stance) == 0.0  # rows 1 and 2 have no stance label


def test_a_row_of_padding_counts_in_no_router_loss():
    # Two pathways; row 0 (one real slot) routes to pathway 0 with probability 1, row 1 (no real slot) to pathway 1.
    probs, selected, real = torch.tensor([[1.0, 0.0], [0.0, 1.0]]), torch.tensor([[0], [1]]), torch.tensor([1.0, 0.0])
    assert float(load_balancing_loss(probs, selected, 2, real)) == pytest.approx(2.0)  # 2 * (1 * 1): collapsed
    assert float(load_balancing_loss(probs, selected, 2)) == pytest.approx(1.0)  # rows equal: 2 * (1/2 * 1/2) * 2
    logits = torch.tensor([[0.0, 0.0], [50.0, 50.0]])
    assert float(router_z_loss(logits, real)) == pytest.approx(log(2) ** 2, rel=1e-5)  # (logsumexp [0, 0])^2
    assert float(router_z_loss(logits)) == pytest.approx((log(2) ** 2 + (50 + log(2)) ** 2) / 2, rel=1e-5)


def test_checkpoints_that_saved_loss_weights_in_the_config_still_load(tmp_path):
    data = SpicyLentilConfig().to_dict() | {"load_balancing_weight": 0.01, "z_loss_weight": 0.001}
    (tmp_path / "config.json").write_text(json.dumps(data))
    assert SpicyLentilConfig.load(tmp_path / "config.json") == SpicyLentilConfig()
