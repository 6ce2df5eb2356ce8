import pytest
import torch

from spicy_lentil.config import FUSIONS, SpicyLentilConfig
from spicy_lentil.fusion import NullPoint
from spicy_lentil.gate import Gate
from spicy_lentil.model import SpicyLentilModel
from tests.conftest import make_input


def test_null_point_attention_shape_and_masking():
    torch.manual_seed(0)
    gate = Gate(384, 9, 3).eval()
    routing = gate(torch.randn(2, 384))
    outputs = torch.randn(2, 4, 9, 144) * routing.active[:, None, :, None]
    null_point = NullPoint(9, 144, dropout=0.0).eval()
    z, attention = null_point(outputs, routing)
    assert z.shape == (2, 4, 144)
    assert attention.shape == (2, 4, 9)
    inactive = ~routing.active[:, None, :].expand(2, 4, 9)
    assert (attention[inactive] == 0).all()
    assert torch.allclose(attention.sum(-1), torch.ones(2, 4), atol=1e-5)


def test_null_point_ignores_inactive_outputs():
    torch.manual_seed(0)
    routing = Gate(384, 9, 4).eval()(torch.randn(1, 384))
    outputs = torch.randn(1, 3, 9, 144) * routing.active[:, None, :, None]
    null_point = NullPoint(9, 144, dropout=0.0).eval()
    noisy = outputs + torch.randn_like(outputs) * (~routing.active)[:, None, :, None]
    assert torch.allclose(null_point(outputs, routing)[0], null_point(noisy, routing)[0], atol=1e-5)


@pytest.mark.parametrize("fusion", FUSIONS)
def test_every_fusion_runs_end_to_end(fusion):
    torch.manual_seed(0)
    model = SpicyLentilModel(SpicyLentilConfig(fusion=fusion)).eval()
    x = make_input()
    with torch.no_grad():
        out = model(x)
    assert out.field.shape == (3, 5) and out.score.shape == (3,)
    assert ((out.field >= 0) & (out.field <= 1)).all() and ((out.score >= 0) & (out.score <= 1)).all()
    assert (out.field[~x.slot_mask] == 0).all()
    inactive = ~out.routing.active[:, None, :].expand_as(out.pathway_attention)
    assert (out.pathway_attention[inactive] == 0).all()


@pytest.mark.parametrize("pooling", ["self_attention", "query_attention"])
def test_pooling_ignores_padding(pooling):
    model = SpicyLentilModel(SpicyLentilConfig(pooling=pooling)).eval()
    with torch.no_grad():
        out = model(make_input())
    assert (out.pooling_weights[1, 3:] == 0).all()
    assert torch.allclose(out.pooling_weights.sum(-1), torch.ones(3))


def test_null_point_same_result_for_shared_and_mixed_routing():
    """Rows routed differently (per-row weights) match the same rows scored alone (weights gathered once)."""
    torch.manual_seed(0)
    routing = Gate(384, 9, 4).eval()(torch.randn(2, 384))
    assert not torch.equal(routing.selected_pathways[0], routing.selected_pathways[1])
    outputs = torch.randn(2, 3, 9, 144) * routing.active[:, None, :, None]
    null_point = NullPoint(9, 144, dropout=0.0).eval()
    mixed, mixed_attention = null_point(outputs, routing)
    for row in range(2):
        z, attention = null_point(outputs[row: row + 1], routing.select(slice(row, row + 1)))
        assert torch.allclose(z[0], mixed[row], atol=1e-5)
        assert torch.allclose(attention[0], mixed_attention[row], atol=1e-6)


def test_null_point_attention_is_multihead_attention():
    """The broadcast attention over k pathway states computes what nn.MultiheadAttention does with its weights."""
    torch.manual_seed(0)
    null_point = NullPoint(9, 144, dropout=0.0).eval()
    h = torch.randn(2, 5, 4, 144)  # (batch, slots, k, hidden)
    with torch.no_grad():
        attended, weights = null_point._attend(h)
        flat = h.reshape(10, 4, 144)
        expected, expected_weights = null_point.attention(flat, flat, flat, need_weights=True, average_attn_weights=True)
    assert torch.allclose(attended, expected.reshape(2, 5, 4, 144), atol=1e-5)
    assert torch.allclose(weights, expected_weights.reshape(2, 5, 4, 4), atol=1e-6)


@pytest.mark.parametrize("fusion", FUSIONS)
def test_rows_routed_alike_are_fused_packed_like_padded(fusion):
    """One query over many documents fuses only the real slots, packed; the result is the padded fusion's."""
    torch.manual_seed(0)
    config = SpicyLentilConfig(fusion=fusion)
    model = SpicyLentilModel(config).eval()
    routing = model.gate(torch.randn(1, 384).expand(3, -1))
    slot_mask = make_input().slot_mask  # row 1 is padded after 3 slots
    outputs = torch.randn(3, 5, 9, config.hidden_dim) * routing.active[:, None, :, None] * slot_mask[:, :, None, None]
    with torch.no_grad():
        z, attention = model._fuse(outputs, routing, slot_mask)
        padded_z, padded_attention = model.fusion(outputs, routing)
    assert torch.allclose(z[slot_mask], padded_z[slot_mask], atol=1e-5)
    assert torch.allclose(attention[slot_mask], padded_attention[slot_mask], atol=1e-6)
    assert (z[~slot_mask] == 0).all() and (attention[~slot_mask] == 0).all()
