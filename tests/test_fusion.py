import pytest
import torch

from spicy_lentil.network.config import FUSIONS, SpicyLentilConfig
from spicy_lentil.network.fusion import NullPoint, build_fusion
from spicy_lentil.network.gate import Gate
from spicy_lentil.network.model import SpicyLentilModel
from tests.conftest import make_input


def test_null_point_attention_shape_and_masking():
    torch.manual_seed(0)
    gate = Gate(384, 9, 3).eval()
    routing = gate(torch.randn(2, 384))
    active = torch.randn(2, 4, 3, 144)  # (batch, slots, k, hidden): the selected pathways' outputs only
    null_point = NullPoint(9, 144, dropout=0.0).eval()
    z, attention = null_point(active, routing)
    assert z.shape == (2, 4, 144)
    assert attention.shape == (2, 4, 9)
    inactive = ~routing.active[:, None, :].expand(2, 4, 9)
    assert (attention[inactive] == 0).all()
    assert torch.allclose(attention.sum(-1), torch.ones(2, 4), atol=1e-5)


@pytest.mark.parametrize("fusion", ["concat_linear", "learned_weights", "gated_unit"])
def test_seed_fusions_on_active_outputs_match_their_definitions_on_all_nine(fusion):
    """Fed only the k active outputs, each seed fusion computes its definition over all nine (inactive ones zero)."""
    torch.manual_seed(0)
    module = build_fusion(fusion, 9, 144, dropout=0.0).eval()
    routing = Gate(384, 9, 4).eval()(torch.randn(3, 384))
    active = torch.randn(3, 5, 4, 144)
    dense = torch.zeros(3, 5, 9, 144).scatter(
        2, routing.selected_pathways[:, None, :, None].expand(3, 5, 4, 144), active
    )
    mask = routing.active[:, None, :]  # (batch, 1, pathways)
    with torch.no_grad():
        z, weights = module(active, routing)
        if fusion == "concat_linear":
            expected = module.norm(module.linear(dense.reshape(3, 5, 9 * 144)))
            expected_weights = routing.dense_weights[:, None, :].expand(3, 5, 9)
        elif fusion == "learned_weights":
            expected_weights = torch.softmax(module.logits.masked_fill(~routing.active, float("-inf")), -1)[
                :, None, :
            ].expand(3, 5, 9)
            expected = module.norm(torch.einsum("bsph,bsp->bsh", dense, expected_weights))
        else:
            expected_weights = torch.softmax(
                module.gate(dense.reshape(3, 5, 9 * 144)).masked_fill(~mask, float("-inf")), -1
            )
            transformed = torch.tanh(torch.einsum("bsph,phg->bspg", dense, module.transform))
            expected = module.norm((expected_weights.unsqueeze(-1) * transformed).sum(2))
    assert torch.allclose(z, expected, atol=1e-5)
    assert torch.allclose(weights, expected_weights, atol=1e-6)


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
    active = torch.randn(2, 3, 4, 144)
    null_point = NullPoint(9, 144, dropout=0.0).eval()
    mixed, mixed_attention = null_point(active, routing)
    for row in range(2):
        z, attention = null_point(active[row : row + 1], routing.select(slice(row, row + 1)))
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
        expected, expected_weights = null_point.attention(
            flat, flat, flat, need_weights=True, average_attn_weights=True
        )
    assert torch.allclose(attended, expected.reshape(2, 5, 4, 144), atol=1e-5)
    assert torch.allclose(weights, expected_weights.reshape(2, 5, 4, 4), atol=1e-6)


@pytest.mark.parametrize("fusion", FUSIONS)
def test_rows_routed_alike_are_fused_packed_like_padded(fusion):
    """One query over many documents fuses only the real slots, packed; the result is the padded, per-row path's."""
    torch.manual_seed(0)
    model = SpicyLentilModel(SpicyLentilConfig(fusion=fusion)).eval()
    x = make_input()  # row 1 is padded after 3 slots
    for name in ("query", "query_tokens", "query_token_mask", "query_ids"):
        setattr(x, name, getattr(x, name)[:1].expand(3, *getattr(x, name).shape[1:]))  # one query on every row
    with torch.no_grad():
        routing = model.gate(x.query)
        z, attention, stance, _ = model._fuse(x, routing)  # routed alike: packed
        active, by_row_stance, _ = model._pathways_by_row(x, routing)
        padded_z, padded_attention = model.fusion(active, routing)
    mask = x.slot_mask
    assert torch.allclose(z[mask], padded_z[mask], atol=1e-5)
    assert torch.allclose(attention[mask], padded_attention[mask], atol=1e-6)
    assert (z[~mask] == 0).all() and (attention[~mask] == 0).all()
    assert stance is not None  # reprehension is among this query's pathways: its stance head reads the same states
    assert torch.allclose(stance[mask], by_row_stance[mask], atol=1e-5)


def test_the_document_head_reads_as_many_prior_features_as_the_first_stage_makes():
    from spicy_lentil.corpus.first_stage import PRIOR_FEATURES
    from spicy_lentil.network.config import SpicyLentilConfig
    from spicy_lentil.network.model import SpicyLentilModel

    config = SpicyLentilConfig()
    assert config.prior_features == PRIOR_FEATURES
    assert SpicyLentilModel(config).doc_head[0].in_features == config.hidden_dim + 2 + PRIOR_FEATURES + 1
