import pytest
import torch

from spicy_lentil.network.config import SpicyLentilConfig
from spicy_lentil.network.gate import Gate, RoutingStatistics
from spicy_lentil.network.losses import load_balancing_loss, router_z_loss
from spicy_lentil.network.model import SpicyLentilModel
from tests.conftest import make_input


@pytest.mark.parametrize("k", [1, 2, 4, 9])
def test_exactly_k_active_and_weights_sum_to_one(k):
    gate = Gate(384, 9, k).eval()
    routing = gate(torch.randn(6, 384))
    assert routing.selected_pathways.shape == (6, k)
    assert (routing.active.sum(-1) == k).all()
    assert torch.allclose(routing.routing_weights.sum(-1), torch.ones(6))
    assert torch.allclose(routing.dense_weights.sum(-1), torch.ones(6))
    assert ((routing.dense_weights > 0) == routing.active).all()
    assert (routing.routing_weights[:, :-1] >= routing.routing_weights[:, 1:]).all()  # highest first
    assert routing.router_probs.dtype == torch.float32


def test_noise_only_while_training():
    gate = Gate(384, 9, 4)
    q = torch.randn(64, 384)
    gate.eval()
    assert torch.equal(gate(q).router_logits, gate(q).router_logits)
    gate.train()
    assert not torch.equal(gate(q).router_logits, gate(q).router_logits)


@pytest.mark.parametrize("k", [1, 4, 9])
def test_unselected_pathways_never_run(k):
    torch.manual_seed(0)
    model = SpicyLentilModel(SpicyLentilConfig(pathways_per_query=k)).eval()
    calls = {name: 0 for name in model.pathway_names}
    rows_seen = {name: 0 for name in model.pathway_names}
    for name, pathway in model.pathways.items():

        def hook(module, inputs, output, name=name):
            calls[name] += 1
            rows_seen[name] += inputs[0].batch_size

        pathway.register_forward_hook(hook)
    x = make_input(batch=4)
    with torch.no_grad():
        out = model(x)
    selected = out.routing.selected_pathways
    for index, name in enumerate(model.pathway_names):
        expected_rows = int((selected == index).any(-1).sum())
        assert calls[name] == (1 if expected_rows else 0)
        assert rows_seen[name] == expected_rows  # dispatched only the rows that chose it
    assert sum(rows_seen.values()) == 4 * k


def test_load_balancing_loss_punishes_collapse():
    n, rows = 9, 90
    balanced_probs = torch.full((rows, n), 1 / n)
    balanced_sel = (torch.arange(rows) % n).unsqueeze(-1)
    collapsed_probs = torch.zeros(rows, n)
    collapsed_probs[:, 0] = 1.0
    collapsed_sel = torch.zeros(rows, 1, dtype=torch.long)
    balanced = load_balancing_loss(balanced_probs, balanced_sel, n)
    collapsed = load_balancing_loss(collapsed_probs, collapsed_sel, n)
    assert balanced.item() == pytest.approx(1.0)
    assert collapsed.item() == pytest.approx(9.0)


def test_load_balancing_loss_excludes_padding():
    probs = torch.softmax(torch.randn(5, 9), -1)
    selected = torch.topk(probs, 2).indices
    real = torch.tensor([3.0, 2.0, 4.0, 0.0, 0.0])  # the last two rows are all padding
    with_padding = load_balancing_loss(probs, selected, 9, real)
    without = load_balancing_loss(probs[:3], selected[:3], 9, real[:3])
    assert with_padding.item() == pytest.approx(without.item())
    logits = torch.randn(5, 9)
    logits[3:] = 50.0  # padding rows with huge logits must not count
    z = torch.logsumexp(logits[:3], -1) ** 2
    assert router_z_loss(logits, real).item() == pytest.approx(((z * real[:3]).sum() / real[:3].sum()).item(), rel=1e-5)
    assert router_z_loss(logits[:3], torch.ones(3)).item() == pytest.approx(z.mean().item(), rel=1e-5)


def test_z_loss_grows_with_logit_scale():
    logits = torch.randn(8, 9)
    assert router_z_loss(10 * logits) > router_z_loss(logits)


def test_routing_statistics():
    gate = Gate(384, 9, 2).eval()
    stats = RoutingStatistics([f"p{i}" for i in range(9)])
    stats.update(gate(torch.randn(10, 384)))
    summary = stats.as_dict()
    assert summary["queries"] == 10
    assert sum(p["selected_share"] for p in summary["pathways"].values()) == pytest.approx(2.0)


def test_k_is_an_argument_of_the_call_and_the_gate_keeps_its_own():
    torch.manual_seed(0)
    gate = Gate(8, 9, top_k=4).eval()
    query = torch.randn(3, 8)
    two = gate(query, 2)
    assert two.selected_pathways.shape == (3, 2)
    assert torch.equal(two.selected_pathways, gate(query).selected_pathways[:, :2])  # the same order, cut at 2
    assert gate(query).selected_pathways.shape == (3, 4) and gate.top_k == 4
    model = SpicyLentilModel(SpicyLentilConfig(pathways_per_query=4)).eval()
    x = make_input(batch=2, slots=3)
    with torch.no_grad():
        assert model(x, k=9).routing.selected_pathways.shape == (2, 9)
        assert model(x).routing.selected_pathways.shape == (2, 4)
