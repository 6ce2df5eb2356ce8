import pytest
import torch

from spicy_lentil.network.batching import collate
from spicy_lentil.network.config import FUSIONS, SpicyLentilConfig
from spicy_lentil.network.fusion import NullPoint, build_fusion
from spicy_lentil.network.gate import Gate
from spicy_lentil.network.model import SpicyLentilModel
from tests.conftest import fake_encoding, make_input


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


def null_point_by_definition(module, active, routing):
    """The null point as its docstring defines it, with `nn.MultiheadAttention` itself over each slot's k states
    and the synthesizer on the concatenation of all nine pathways' states (inactive ones zero)."""
    batch, slots, k, hidden = active.shape
    selected = routing.selected_pathways
    h = torch.einsum("bskh,bkhg->bskg", active, module.projection[selected]) + module.identity[selected][:, None]
    flat = h.reshape(batch * slots, k, hidden)
    attended, attention = module.attention(flat, flat, flat, need_weights=True, average_attn_weights=True)
    h = module.norm(h + attended.reshape(batch, slots, k, hidden))
    received = attention.reshape(batch, slots, k, k).mean(2)  # the attention each pathway receives
    weights = torch.zeros(batch, slots, 9).scatter(2, selected[:, None, :].expand(batch, slots, k), received)
    dense = torch.zeros(batch, slots, 9, hidden).scatter(
        2, selected[:, None, :, None].expand(batch, slots, k, hidden), h
    )
    synth = dense.reshape(batch, slots, 9 * hidden) @ module.synth_in.reshape(9 * hidden, -1) + module.synth_bias
    return module.out_norm(module.synthesizer(synth) + active.sum(2)), weights


@pytest.mark.parametrize("routed", ["per_row", "alike"])
def test_null_point_computes_its_definition_with_multihead_attention(routed):
    """Its broadcast attention over the k pathway states and its blockwise synthesizer compute what
    `nn.MultiheadAttention` and the synthesizer over all nine states do (rows routed alike take other branches)."""
    torch.manual_seed(0)
    null_point = NullPoint(9, 144, dropout=0.0).eval()
    with torch.no_grad():
        for parameter in null_point.parameters():  # away from the identity projections and zero biases of a fresh one
            parameter.add_(torch.randn_like(parameter) * 0.1)
        queries = torch.randn(2, 384)
        if routed == "alike":
            queries[1] = queries[0]
        routing = Gate(384, 9, 4).eval()(queries)
        assert torch.equal(routing.selected_pathways[0], routing.selected_pathways[1]) == (routed == "alike")
        active = torch.randn(2, 5, 4, 144)  # (batch, slots, k, hidden)
        z, weights = null_point(active, routing)
        expected, expected_weights = null_point_by_definition(null_point, active, routing)
    assert torch.allclose(z, expected, atol=1e-5)
    assert torch.allclose(weights, expected_weights, atol=1e-6)


@pytest.mark.parametrize("fusion", FUSIONS)
def test_rows_routed_alike_are_fused_packed_like_padded(fusion):
    """One query over many documents fuses only the real slots, packed; the model's output is that of the padded,
    per-row path, which the same rows take in a batch where another query is routed otherwise."""
    torch.manual_seed(0)
    model = SpicyLentilModel(SpicyLentilConfig(fusion=fusion)).eval()
    g = torch.Generator().manual_seed(0)
    query, other = fake_encoding(4, generator=g), fake_encoding(4, generator=g)
    documents = [[fake_encoding(7 - (i % 3), generator=g) for i in range(n)] for n in (5, 3, 5, 4)]  # rows 1, 3 padded
    titles = [fake_encoding(3, generator=g), None, None, None]
    special = [0, 100, 101, 102, 103]
    alike = collate([query] * 3, documents[:3], titles[:3], special_ids=special)
    mixed = collate([query] * 3 + [other], documents, titles, special_ids=special)
    fused = []  # the shape of the states each call hands the fusion
    model.fusion.register_forward_hook(lambda module, args, output: fused.append(tuple(args[0].shape[:2])))
    with torch.no_grad():
        packed, padded = model(alike), model(mixed)
    mask = alike.slot_mask
    assert not torch.equal(padded.routing.selected_pathways[0], padded.routing.selected_pathways[3])
    assert fused == [(1, int(mask.sum())), (4, 5)]  # packed: one row of the 13 real slots; then padded, per row
    assert torch.allclose(packed.slot_logits[mask], padded.slot_logits[:3][mask], atol=1e-5)
    assert torch.allclose(packed.doc_logits, padded.doc_logits[:3], atol=1e-5)
    assert torch.allclose(packed.pathway_attention[mask], padded.pathway_attention[:3][mask], atol=1e-6)
    assert (packed.pathway_attention[~mask] == 0).all() and (padded.pathway_attention[:3][~mask] == 0).all()
    # reprehension is among this query's pathways: its stance head reads the same states either way
    assert packed.stance_logits is not None and padded.stance_logits is not None
    assert padded.stance_rows.tolist()[:3] == [0, 1, 2] == packed.stance_rows.tolist()
    assert torch.allclose(packed.stance_logits[mask], padded.stance_logits[:3][mask], atol=1e-5)


def test_the_document_head_reads_as_many_prior_features_as_the_first_stage_makes():
    from spicy_lentil.corpus.first_stage import PRIOR_FEATURES
    from spicy_lentil.network.config import SpicyLentilConfig
    from spicy_lentil.network.model import SpicyLentilModel

    config = SpicyLentilConfig()
    assert config.prior_features == PRIOR_FEATURES
    assert SpicyLentilModel(config).doc_head[0].in_features == config.hidden_dim + 2 + PRIOR_FEATURES + 1
