import pytest
import torch

from pathways import PATHWAY_NAMES, build_pathways
from tests.conftest import make_input

PATHWAYS = build_pathways(list(PATHWAY_NAMES), 384, 144, 0.0, vocab_size=64, num_stances=3)


def test_nine_pathways_in_fixed_order():
    assert PATHWAY_NAMES == (
        "propositional", "perspectival", "procedural", "participatory",
        "prehension", "comprehension", "apprehension", "reprehension", "extension",
    )
    assert all(PATHWAYS[n].question for n in PATHWAY_NAMES)


@pytest.mark.parametrize("name", PATHWAY_NAMES)
def test_shape_finite_and_gradients(name):
    pathway = PATHWAYS[name].train()
    x = make_input()
    out = pathway(x)
    assert out.shape == (3, 5, 144)
    assert torch.isfinite(out).all()
    pathway.zero_grad()
    (out * x.slot_mask.unsqueeze(-1)).square().sum().backward()
    for param_name, param in pathway.named_parameters():
        if name == "reprehension" and param_name.startswith("stance"):
            continue  # the stance head is trained through stance_logits, not the pathway output
        assert param.grad is not None and param.grad.abs().sum() > 0, f"{name}.{param_name} got no gradient"


@pytest.mark.parametrize("name", PATHWAY_NAMES)
def test_padding_does_not_change_real_slots(name):
    pathway = PATHWAYS[name].eval()
    x = make_input(batch=1, slots=3, padded_row=None)
    padded = make_input(batch=1, slots=3, padded_row=None)
    # Same document with two padding slots appended.
    extra = {
        "slots": torch.cat([x.slots, torch.zeros(1, 2, 384)], 1),
        "slot_mask": torch.cat([x.slot_mask, torch.zeros(1, 2, dtype=torch.bool)], 1),
        "slot_tokens": torch.cat([x.slot_tokens, torch.zeros(1, 2, 7, 384)], 1),
        "slot_token_mask": torch.cat([x.slot_token_mask, torch.zeros(1, 2, 7, dtype=torch.bool)], 1),
        "slot_ids": torch.cat([x.slot_ids, torch.full((1, 2, 7), -1)], 1),
    }
    for key, value in extra.items():
        setattr(padded, key, value)
    with torch.no_grad():
        assert torch.allclose(pathway(x), pathway(padded)[:, :3], atol=1e-5)


def test_pathways_compute_different_things():
    x = make_input()
    with torch.no_grad():
        outs = {n: PATHWAYS[n].eval()(x) for n in PATHWAY_NAMES}
    for a in PATHWAY_NAMES:
        for b in PATHWAY_NAMES:
            if a < b:
                assert not torch.allclose(outs[a], outs[b], atol=1e-3)


def test_prehension_rewards_shared_rare_terms():
    pathway = PATHWAYS["prehension"]
    idf = torch.ones(64)
    idf[7] = 5.0
    pathway.set_idf(idf)
    x = make_input(batch=1, slots=2, padded_row=None)
    x.query_ids = torch.tensor([[7, 8, -1, -1]])
    x.slot_ids = torch.tensor([[[7, 1, 2, 3, 4, -1, -1], [9, 1, 2, 3, 4, -1, -1]]])
    with torch.no_grad():
        out_match = pathway(x)
        x.query_ids = torch.tensor([[30, 31, -1, -1]])
        out_none = pathway(x)
    assert not torch.allclose(out_match[0, 0], out_none[0, 0], atol=1e-4)  # slot 0 shares term 7
    assert torch.allclose(out_match[0, 1], out_none[0, 1], atol=1e-5)  # slot 1 shares nothing either way
    with pytest.raises(ValueError):
        pathway.set_idf(torch.ones(3))
