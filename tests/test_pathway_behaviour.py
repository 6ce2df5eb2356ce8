"""One test per pathway of the inductive bias it is built for: each fails when that mechanism breaks.

Text goes through the shipped encoder (read-only, uncached), so inputs are what the engine feeds a
pathway. Properties that hold by construction are checked on a freshly initialised pathway with a
fixed seed; where a pathway's head input says more than its hidden states can, the test reads the
features the head was given (`head_input`).
"""

import dataclasses

import pytest
import torch

from spicy_lentil.network.batching import collate
from spicy_lentil.network.encoder import Encoding
from spicy_lentil.pathways import build_pathways

DIM, HIDDEN = 384, 144
QUERY = "Does vitamin D deficiency weaken bones?"


def fresh(name: str):
    """A freshly initialised pathway, the same on every run, without dropout."""
    torch.manual_seed(0)
    return build_pathways([name], DIM, HIDDEN, 0.0, vocab_size=30522, num_stances=3)[name].eval()


@pytest.fixture
def encode(lentil):
    """Texts -> encodings through the shipped encoder, without touching its cache."""
    return lambda *texts: lentil.encoder.encode(list(texts), use_cache=False)


@pytest.fixture
def batch(lentil):
    """(query, documents[, titles]) encodings -> one PathwayInput, collated as the engine does."""

    def make(query, documents, titles=None):
        return collate([query] * len(documents), documents, titles or [None] * len(documents), lentil.special_ids)

    return make


def hidden(pathway, x) -> torch.Tensor:
    with torch.no_grad():
        return pathway(x).hidden


def head_input(pathway, x) -> torch.Tensor:
    """The features the pathway's head read, per slot: (batch, slots, features), zeros on padding.

    The columns are in the order the pathway's forward concatenates them.
    """
    seen = []
    handle = pathway.head.register_forward_pre_hook(lambda module, args: seen.append(args[0]))
    try:
        hidden(pathway, x)
    finally:
        handle.remove()
    (features,) = seen  # the head runs once, over the real slots in mask order
    out = features.new_zeros(*x.slot_mask.shape, features.shape[-1])
    out[x.slot_mask] = features
    return out


def close(a: torch.Tensor, b: torch.Tensor) -> bool:
    return torch.allclose(a, b, atol=1e-5)


def apart(a: torch.Tensor, b: torch.Tensor) -> bool:
    return (a - b).abs().max().item() > 1e-3


def test_propositional_judges_a_slot_by_its_meaning_alone(encode, batch):
    # "Does the slot state what the query asks?" is asked of the sentence, not of its document.
    pathway = fresh("propositional")
    q, claim, other, third = encode(
        QUERY,
        "Vitamin D deficiency leads to brittle bones.",
        "Rome split into east and west.",
        "Calcium is absorbed in the gut.",
    )
    reworded = Encoding(claim.embedding, other.tokens, other.token_ids)  # the same meaning in other word pieces
    x = batch(q, [[claim, other], [third, other, claim], [reworded]])
    h = hidden(pathway, x)
    assert close(h[0, 0], h[1, 2]) and close(h[0, 0], h[2, 0])  # other neighbours, another place, other tokens
    assert apart(h[0, 0], h[1, 0])  # another meaning, another judgement


def test_perspectival_sees_only_what_departs_from_the_document(encode, batch):
    pathway = fresh("perspectival")
    q, other_q, gist, outlier, elsewhere = encode(
        QUERY,
        "Why did the Roman Empire fall?",
        "Vitamin D helps the gut absorb calcium.",
        "Without it, bones become thin and brittle.",
        "Rome split in 395.",
    )
    uniform = hidden(pathway, batch(q, [[gist, gist, gist]]))
    # A document that only repeats its gist has no slot that stands out, from any query's view.
    assert close(uniform[0, 0], uniform[0, 1]) and close(uniform[0, 0], uniform[0, 2])
    assert close(uniform, hidden(pathway, batch(other_q, [[gist, gist, gist]])))
    h = hidden(pathway, batch(q, [[gist, gist, outlier], [elsewhere, elsewhere, outlier]]))
    assert apart(h[0, 2], h[0, 0])  # the slot that departs from the gist stands out
    assert apart(h[0, 2], hidden(pathway, batch(other_q, [[gist, gist, outlier]]))[0, 2])  # as the query sees it
    assert apart(h[0, 2], h[1, 2])  # the same sentence departs differently from another document's gist


def test_procedural_reads_where_a_slot_sits(encode, batch):
    pathway = fresh("procedural")
    q, a, b, c = encode(QUERY, "Vitamin D was measured.", "Bone density fell.", "Supplements are advised.")
    # Seven copies of one sentence: slots 2, 3 and 4 see the same sentences within the two
    # convolutions' reach (two either side), so only the position code can set them apart.
    h = hidden(pathway, batch(q, [[a] * 7]))
    assert apart(h[0, 2], h[0, 3]) and apart(h[0, 3], h[0, 4]) and apart(h[0, 2], h[0, 4])
    # The middle slot, at the same position, between the same two sentences in the other order.
    forward, backward = hidden(pathway, batch(q, [[a, b, c], [c, b, a]]))
    assert apart(forward[1], backward[1])


def test_participatory_counts_each_query_word_by_its_best_partner(encode, batch):
    pathway = fresh("participatory")
    q, first, second, third = encode(
        QUERY, "Rome split into east and west.", "Calcium is absorbed in the gut.", "Cats sleep all afternoon."
    )

    def slot(sentence: Encoding, tokens: torch.Tensor) -> Encoding:
        ids = torch.arange(tokens.shape[0]) + 5000  # no lexical match: ids are not what this pathway reads
        return Encoding(sentence.embedding, tokens, ids)

    # Every query word (the query's own token vectors) inside otherwise unrelated slots: each finds
    # a perfect partner, so MaxSim saturates and what else a slot says does not matter.
    full = slot(first, torch.cat([first.tokens, q.tokens]))
    elsewhere = slot(second, torch.cat([q.tokens.flip(0), second.tokens, q.tokens[:2]]))  # reordered, repeated
    missing = slot(third, torch.cat([third.tokens, q.tokens[:2], q.tokens[3:]]))  # "vitamin" without its partner
    h = hidden(pathway, batch(q, [[full, elsewhere, missing]]))
    assert close(h[0, 0], h[0, 1])
    assert apart(h[0, 0], h[0, 2])


def test_prehension_grips_shared_word_pieces_weighted_by_their_rarity(lentil, encode, batch):
    pathway = fresh("prehension")
    shipped_idf = lentil.model.pathways["prehension"].idf
    pathway.set_idf(shipped_idf)
    vocab = lentil.encoder.tokenizer.convert_tokens_to_ids
    # The shipped table, fitted on the training corpora, weighs content words over function words.
    assert shipped_idf[vocab("bones")] > 10 * shipped_idf[vocab("the")] > 0
    q, rome, rare, common, none = encode(
        QUERY, "Why did Rome fall?", "Old bones break easily.", "It does rain often.", "Cats nap all afternoon."
    )
    x = batch(q, [[rare, common, none]])
    h = hidden(pathway, x)
    # Lexical, not semantic: other sentence meanings and other query token vectors change nothing.
    g = torch.Generator().manual_seed(0)
    rewritten = dataclasses.replace(
        x,
        query=torch.randn(x.query.shape, generator=g),
        query_tokens=torch.randn(x.query_tokens.shape, generator=g),
        slots=torch.randn(x.slots.shape, generator=g),
    )
    assert close(h, hidden(pathway, rewritten))
    # Nothing shared, nothing gripped: the slot reads alike for any query it shares no word with.
    assert close(h[0, 2], hidden(pathway, batch(rome, [[rare, common, none]]))[0, 2])
    # The IDF table weighs what is shared: raising a query word's weight moves the slots that share
    # query words and leaves the one that shares none; a word outside the query moves nothing.
    rarer = shipped_idf.clone()
    rarer[vocab("bones")] *= 2
    pathway.set_idf(rarer)
    raised = hidden(pathway, x)
    assert apart(h[0, 0], raised[0, 0]) and apart(h[0, 1], raised[0, 1]) and close(h[0, 2], raised[0, 2])
    outside = shipped_idf.clone()
    outside[vocab("rain")] *= 2
    pathway.set_idf(outside)
    assert close(h, hidden(pathway, x))
    # One shared word piece each, in slots of one length, but the rare one grips harder. Columns after
    # the gripped tokens' projection, in forward's order: overlap, IDF overlap, log1p(BM25), ...
    pathway.set_idf(shipped_idf)
    features = head_input(pathway, x)[0, :, HIDDEN:]
    overlap, idf_overlap, bm25 = features[:, 0], features[:, 1], features[:, 2]
    assert overlap[0] == overlap[1] > 0 == overlap[2]
    assert idf_overlap[0] > idf_overlap[1] > 0 and bm25[0] > bm25[1] > 0


def test_comprehension_reads_a_slot_with_the_rest_of_its_document(encode, batch):
    pathway = fresh("comprehension")
    q, claim, drug, weather, trial = encode(
        "Which drug halves mortality?",
        "It reduced mortality by half.",
        "Aspirin was given to the patients.",
        "The weather was mild that year.",
        "The trial ran for two years.",
    )
    h = hidden(pathway, batch(q, [[drug, claim, trial], [weather, claim, trial], [trial, drug, claim]]))
    assert apart(h[0, 1], h[1, 1])  # "it" means something else beside another sentence
    # Meaning comes from what the document says, not from where: reordered, each slot reads the same.
    assert close(h[0, 0], h[2, 1]) and close(h[0, 1], h[2, 2]) and close(h[0, 2], h[2, 0])


def test_apprehension_finds_a_restatement_less_novel_than_news(encode, batch):
    pathway = fresh("apprehension")
    q, finding, method, news = encode(
        QUERY, "Vitamin D deficiency weakens bones.", "We measured bone density.", "Calcium intake made no difference."
    )
    x = batch(q, [[finding, method, finding], [finding, method, news], [finding, finding, news]])
    features = head_input(pathway, x)  # in forward's order: novelty, q * novelty, q * s, familiarity, ...
    novelty, familiarity = features[..., :DIM].norm(dim=-1), features[..., 3 * DIM]
    assert novelty[0, 2] < novelty[1, 2] and familiarity[0, 2] > familiarity[1, 2]  # a restatement, then news
    assert novelty[2, 1] < 1e-4 and familiarity[2, 1] > 0.999  # the slot just before says exactly this
    # The running context is causal: what comes later never changes what came first.
    h = hidden(pathway, x)
    assert close(h[0, :2], h[1, :2]) and apart(h[0, 2], h[1, 2])
    assert apart(h[1, 2], h[2, 2])  # while what came before does


def test_reprehension_cue_probes_respond_to_negation_words(lentil, encode, batch):
    # The shipped probes are not tested: on matched affirmed and negated sentences they respond no
    # more to negation than freshly initialised ones do. Aimed at negation by hand, a probe must.
    pathway = fresh("reprehension")
    examples = encode("The results were not significant.", "Patients did not respond.", "It is not known.")
    not_id = lentil.encoder.tokenizer.convert_tokens_to_ids("not")
    probe = torch.stack([e.tokens[e.token_ids == not_id][0].float() for e in examples]).mean(0)
    with torch.no_grad():
        pathway.cues[0] = probe / probe.norm()  # "not" as these other sentences use it
    q, *slots = encode(
        "Does aspirin reduce the risk of heart attacks?",
        "Aspirin does reduce the risk of heart attacks.",
        "Aspirin does not reduce the risk of heart attacks.",
        "Statins did clearly lower cholesterol.",
        "Statins did not lower cholesterol.",
    )
    features = head_input(pathway, batch(q, [slots]))[0]  # in forward's order: contrast, slot cues, query cues, ...
    slot_cue, query_cue = features[:, HIDDEN], features[:, HIDDEN + pathway.num_cues]
    assert slot_cue[1] > 0.6 and slot_cue[3] > 0.6  # one word in the slot fires the probe: a token-level maximum
    assert slot_cue[0] < slot_cue[1] - 0.2 and slot_cue[2] < slot_cue[3] - 0.2  # the affirmed twin does not
    assert (query_cue < slot_cue[1] - 0.2).all()  # an affirmative query: the negated slot contrasts with it


def test_extension_matches_the_neighbourhood_and_the_title(encode, batch):
    pathway = fresh("extension")
    q, title, other_title, *sentences = encode(
        QUERY,
        "Vitamin D and bone health",
        "A history of Rome",
        "Vitamin D helps absorb calcium.",
        "This effect matters for bones.",
        "Rome split into east and west.",
        "Constantinople became a capital.",
        "The empire lasted centuries.",
        "Trade routes crossed the city.",
    )
    changed_last = sentences[:5] + encode("Bread was baked daily.")
    x = batch(q, [sentences, changed_last, sentences, sentences], [title, title, other_title, None])
    h = hidden(pathway, x)
    # The window is two slots either side: changing the last slot reaches slots 3 and 4 only.
    assert close(h[0, :3], h[1, :3]) and apart(h[0, 3], h[1, 3]) and apart(h[0, 4], h[1, 4])
    assert all(apart(h[0, i], h[2, i]) for i in range(6))  # the title is matched for every slot
    # No title: the document's centroid stands in for what the document is about.
    centroid = torch.stack([s.embedding for s in sentences]).mean(0)
    as_title = Encoding(centroid, title.tokens, title.token_ids)
    assert close(h[3], hidden(pathway, batch(q, [sentences], [as_title]))[0])
