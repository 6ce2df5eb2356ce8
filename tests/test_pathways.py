import dataclasses

import pytest
import torch

from spicy_lentil.network.batching import collate
from spicy_lentil.pathways import PATHWAY_NAMES, build_pathways
from spicy_lentil.pathways.base import CorpusStatistics, segment_max, segment_sum, token_products
from tests.conftest import fake_encoding, make_input


@pytest.fixture
def pathways():
    """A fresh set of the nine pathways per test: tests train, evaluate and refit them."""
    torch.manual_seed(0)
    return build_pathways(list(PATHWAY_NAMES), 384, 144, 0.0, vocab_size=2000, num_stances=3)


def test_nine_pathways_in_fixed_order(pathways):
    assert PATHWAY_NAMES == (
        "propositional",
        "perspectival",
        "procedural",
        "participatory",
        "prehension",
        "comprehension",
        "apprehension",
        "reprehension",
        "extension",
    )
    assert all(pathways[n].question for n in PATHWAY_NAMES)


@pytest.mark.parametrize("name", PATHWAY_NAMES)
def test_shape_finite_and_gradients(pathways, name):
    pathway = pathways[name].train()
    x = make_input()
    out = pathway(x).hidden
    assert out.shape == (3, 5, 144)
    assert torch.isfinite(out).all()
    pathway.zero_grad()
    (out * x.slot_mask.unsqueeze(-1)).square().sum().backward()
    for param_name, param in pathway.named_parameters():
        if name == "reprehension" and param_name.startswith("stance"):
            continue  # the stance head is trained through the stance logits, not the hidden states
        assert param.grad is not None and param.grad.abs().sum() > 0, f"{name}.{param_name} got no gradient"


@pytest.mark.parametrize("name", PATHWAY_NAMES)
def test_batch_neighbours_and_padding_do_not_change_a_document(pathways, name):
    """A document scores the same alone and in a batch beside longer documents (more slots, more tokens)."""
    pathway = pathways[name].eval()
    g = torch.Generator().manual_seed(1)
    query = fake_encoding(5, generator=g)
    short = [fake_encoding(6, generator=g) for _ in range(3)]
    long = [fake_encoding(30, generator=g) for _ in range(7)]
    alone = collate([query], [short], [None], [101, 102])
    together = collate([query, query], [long, short], [None, None], [101, 102])
    with torch.no_grad():
        batched = pathway(together).hidden
        assert torch.allclose(pathway(alone).hidden[0], batched[1, :3], atol=1e-5)
    assert (batched[1, 3:] == 0).all()  # the head never runs on padding



@pytest.mark.parametrize("name", PATHWAY_NAMES)
def test_each_row_is_scored_against_its_own_query(pathways, name):
    """Rows of one batch asked different queries (as in training) score as each would alone."""
    pathway = pathways[name].eval()
    g = torch.Generator().manual_seed(2)
    queries = [fake_encoding(6, generator=g), fake_encoding(4, generator=g)]
    documents = [[fake_encoding(8, generator=g) for _ in range(3)], [fake_encoding(5, generator=g) for _ in range(4)]]
    together = collate(queries, documents, [None, None], [101, 102])
    assert not together.shared_query
    with torch.no_grad():
        batched = pathway(together).hidden
        for row in range(2):
            alone = pathway(collate([queries[row]], [documents[row]], [None], [101, 102])).hidden
            slots = len(documents[row])
            assert torch.allclose(alone[0], batched[row, :slots], atol=1e-5), row

def test_token_products_equal_plain_products():
    x = make_input()  # rows of different token counts, packed
    g = torch.Generator().manual_seed(0)
    shared, per_row = torch.randn(5, 384, generator=g), torch.randn(x.batch_size, 5, 384, generator=g)
    assert torch.allclose(token_products(x, shared), x.tokens @ shared.t(), atol=1e-5)
    each_row = torch.stack([x.tokens[t] @ per_row[x.token_row[t]].t() for t in range(x.tokens.shape[0])])
    assert torch.allclose(token_products(x, per_row), each_row, atol=1e-5)


def test_segment_reductions_gather_each_slots_own_tokens():
    x = make_input()
    values = torch.randn(x.tokens.shape[0], 2)
    maxima, sums = segment_max(values, x, empty=-7.0), segment_sum(values, x)
    for row in range(x.batch_size):
        for slot in range(x.slot_mask.shape[1]):
            mine = values[(x.token_row == row) & (x.token_slot == slot)]
            if x.slot_mask[row, slot]:
                assert torch.allclose(maxima[row, slot], mine.max(0).values) and torch.allclose(
                    sums[row, slot], mine.sum(0)
                )
            else:  # padding: no tokens
                assert mine.numel() == 0 and (maxima[row, slot] == -7.0).all() and (sums[row, slot] == 0).all()


def test_row_selection_keeps_the_selected_rows_tokens_in_order():
    x = make_input(batch=4)
    picked = x.select(torch.tensor([3, 1]))
    for new_row, row in enumerate((3, 1)):
        mine = x.token_row == row
        assert torch.equal(picked.tokens[picked.token_row == new_row], x.tokens[mine])
        assert torch.equal(picked.token_slot[picked.token_row == new_row], x.token_slot[mine])
    assert picked.token_row.tolist() == sorted(picked.token_row.tolist())  # rows stay grouped, in order
    assert torch.equal(picked.slots, x.slots[[3, 1]]) and picked.batch_size == 2


@pytest.mark.parametrize("name", PATHWAY_NAMES)
def test_every_pathway_reads_the_query(pathways, name):
    # Relevance is to a query: a pathway whose output ignores it scores every query alike.
    x, other = make_input(seed=0), make_input(seed=1)
    asked_otherwise = dataclasses.replace(
        x,
        query=other.query,
        query_tokens=other.query_tokens,
        query_token_mask=other.query_token_mask,
        query_ids=other.query_ids,
    )
    pathway = pathways[name].eval()
    with torch.no_grad():
        out, again, changed = pathway(x).hidden, pathway(x).hidden, pathway(asked_otherwise).hidden
    assert torch.equal(out, again)
    assert (out - changed).abs().max() > 1e-3


def test_prehension_rewards_shared_rare_terms(pathways):
    pathway = pathways["prehension"]
    idf = torch.ones(2000)
    idf[7] = 5.0
    pathway.fit(CorpusStatistics(idf))
    g = torch.Generator().manual_seed(0)

    def encoding(ids):
        e = fake_encoding(len(ids), generator=g)
        return type(e)(e.embedding, e.tokens, torch.tensor(ids))

    slots = [encoding([7, 1, 2, 3, 4]), encoding([9, 1, 2, 3, 4])]
    hit = collate([encoding([7, 8])], [slots], [None], [])
    miss = collate([encoding([30, 31])], [slots], [None], [])
    miss.query, miss.query_tokens = hit.query, hit.query_tokens  # only the query's ids differ
    with torch.no_grad():
        out_hit, out_miss = pathway(hit).hidden, pathway(miss).hidden
    assert not torch.allclose(out_hit[0, 0], out_miss[0, 0], atol=1e-4)  # slot 0 shares the rare term 7
    assert torch.allclose(out_hit[0, 1], out_miss[0, 1], atol=1e-5)  # slot 1 shares nothing either way
    with pytest.raises(ValueError):
        pathway.set_idf(torch.ones(3))


def test_collate_packs_each_documents_tokens_with_their_slot():
    g = torch.Generator().manual_seed(3)
    query = fake_encoding(5, generator=g)
    documents = [[fake_encoding(n, generator=g) for n in (4, 9, 6)], [fake_encoding(7, generator=g)]]
    x = collate([query, query], documents, [None, None], [101, 102])
    assert x.tokens.shape == (19 + 7, 384) and x.slots.shape[:2] == (2, 3)  # tokens packed, no padding
    assert x.token_row.tolist() == [0] * 19 + [1] * 7
    assert x.token_slot.tolist() == [0] * 4 + [1] * 9 + [2] * 6 + [0] * 7
    assert torch.equal(x.tokens[4:13], documents[0][1].tokens.float()) and torch.equal(
        x.tokens[19:], documents[1][0].tokens.float()
    )
    assert torch.equal(x.slots[0, 1], documents[0][1].embedding) and x.slot_mask[1].tolist() == [True, False, False]
    assert not x.slots[1, 1:].any()  # slot padding is zero
    assert x.token_ids[0] == -1 and x.token_ids[1] == documents[0][0].token_ids[1]  # [CLS] never matches a word
    assert (
        x.shared_query and not collate([query, fake_encoding(5, generator=g)], documents, [None, None], []).shared_query
    )
