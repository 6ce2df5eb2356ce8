"""The reader: its inputs from stored token ids, training, how its logits join the head's, save and reload."""

import copy
import json

import numpy as np
import pytest
import torch

from spicy_lentil import SpicyLentil
from spicy_lentil.network.batching import collate
from spicy_lentil.network.config import BUNDLED_ENCODER
from spicy_lentil.network.reader import READER_WEIGHTS_NAME, Reader, load_backbone
from spicy_lentil.training.calibration import fit_reader_mix, mixed, reader_parts
from spicy_lentil.training.calibration_examples import ScoredExample
from spicy_lentil.training.data import RelevanceData
from spicy_lentil.training.reader_training import ReaderTrainingArguments, reader_groups, reader_loss, train_reader

QUERY = "What time can I check in at the hotel?"
DOCUMENTS = [
    ["Check-out is at 11:00 on the day you leave.", "Check-in starts at 15:00, and the front desk is open all night."],
    ["The pool closes at 22:00."],
]


@pytest.fixture(scope="module")
def reader_parts_():
    backbone, tokenizer = load_backbone(BUNDLED_ENCODER)
    return backbone, tokenizer


@pytest.fixture(scope="module")
def reader_lentil(lentil, reader_parts_):
    """The shipped model with an untrained reader (its own copy of the network) mixed in with weights (1, 0.5)."""
    model = copy.deepcopy(lentil.model)
    model.config = copy.deepcopy(model.config)
    model.config.reader = BUNDLED_ENCODER
    backbone, tokenizer = reader_parts_
    torch.manual_seed(0)
    model.reader = Reader(copy.deepcopy(backbone), tokenizer, 48)
    model.reader_mix.copy_(torch.tensor([1.0, 0.5]))
    return SpicyLentil(model, lentil.encoder)


def test_pair_inputs_from_stored_token_ids_are_the_tokenizers_pair_encoding(lentil, reader_parts_):
    backbone, tokenizer = reader_parts_
    reader = Reader(backbone, tokenizer, 24)  # short: the second document's sentence is cut, as the tokenizer cuts it
    query = lentil.encoder.encode([QUERY])[0]
    slots = [[lentil.encoder.encode([s])[0] for s in document] for document in DOCUMENTS]
    x = collate([query, query], slots, [None, None], tokenizer.all_special_ids)
    built = reader.pair_inputs(x)
    sentences = [s for document in DOCUMENTS for s in document]
    expected = tokenizer([QUERY] * len(sentences), sentences, truncation="only_second", max_length=24, padding=True,
                         return_tensors="pt")
    for key in ("input_ids", "attention_mask", "token_type_ids"):
        assert torch.equal(built[key], expected[key]), key


def test_a_reader_weighted_zero_leaves_every_score_as_the_head_gives_it(lentil, reader_lentil):
    quiet = SpicyLentil(copy.deepcopy(reader_lentil.model), lentil.encoder)
    quiet.model.reader_mix.zero_()
    for document in DOCUMENTS:
        a, b = lentil.field(QUERY, {"sentences": document}), quiet.field(QUERY, {"sentences": document})
        assert a.score == b.score and [s.score for s in a.slots] == [s.score for s in b.slots]
    mixed_in, alone = (m.field(QUERY, {"sentences": DOCUMENTS[0]}) for m in (reader_lentil, lentil))
    assert [s.score for s in mixed_in.slots] != [s.score for s in alone.slots]


def test_save_and_reload_keep_a_readers_scores(reader_lentil, tmp_path):
    reader_lentil.save_pretrained(tmp_path)
    assert json.loads((tmp_path / "config.json").read_text())["reader_weights"] == READER_WEIGHTS_NAME
    reloaded = SpicyLentil.from_pretrained(tmp_path)
    assert reloaded.model.reader_mix.tolist() == [1.0, 0.5]
    for document in DOCUMENTS:
        a, b = reader_lentil.field(QUERY, {"sentences": document}), reloaded.field(QUERY, {"sentences": document})
        # the reader's tensors are stored in float16
        assert b.score == pytest.approx(a.score, abs=2e-3)
        assert [s.score for s in b.slots] == pytest.approx([s.score for s in a.slots], abs=2e-3)
    (tmp_path / READER_WEIGHTS_NAME).write_bytes(b"not safetensors")
    from spicy_lentil.errors import ModelLoadError

    with pytest.raises(ModelLoadError, match=READER_WEIGHTS_NAME):
        SpicyLentil.from_pretrained(tmp_path)


def _split(labelled: bool) -> RelevanceData:
    corpus = {"d1": {"_id": "d1", "text": "", "sentences": DOCUMENTS[0]},
              "d2": {"_id": "d2", "text": "", "sentences": DOCUMENTS[1]}}
    return RelevanceData("hotel", "train", None, corpus, {"q": QUERY}, {"q": {"d1": 1}},
                         {("q", "d1"): {1: 0}} if labelled else {}, [("u", "Is there a gym?", "d1")])


def test_training_moves_the_reader_towards_the_labelled_sentence(reader_parts_):
    backbone, tokenizer = reader_parts_
    split = _split(True)
    groups = reader_groups([split])
    assert [g.labels for g in groups] == [[0, 1], [0, 0]]  # the labelled pair, then the unanswerable one
    torch.manual_seed(0)
    reader = Reader(copy.deepcopy(backbone), tokenizer, 48)

    def gap() -> float:
        inputs = tokenizer([QUERY] * 2, DOCUMENTS[0], truncation="only_second", max_length=48, padding=True,
                           return_tensors="pt")
        with torch.no_grad():
            logits = reader.pair_logits(dict(inputs))
        return float(logits[1] - logits[0])

    before = gap()
    report = train_reader(reader, tokenizer, [split], ReaderTrainingArguments(epochs=8, learning_rate=1e-4,
                                                                              warmup_steps=1))
    assert report["groups"] == 2 and report["steps"] == 8
    assert gap() > before + 0.5
    assert not any(p.requires_grad for p in reader.parameters())
    assert all(not name.startswith("backbone.embeddings.word_embeddings") for name in reader.tuned_state())
    with pytest.raises(ValueError, match="sentence labels"):
        train_reader(reader, tokenizer, [_split(False)], ReaderTrainingArguments())


def test_the_reader_loss_is_pointwise_plus_listwise_over_groups_with_an_answer():
    logits, labels = torch.tensor([2.0, -1.0, 0.5, 0.0]), torch.tensor([1.0, 0.0, 0.0, 0.0])
    pointwise = torch.nn.functional.binary_cross_entropy_with_logits(logits, labels)
    listwise = -torch.log_softmax(logits[:2], 0)[0]  # the second group has no answer: no listwise term
    assert reader_loss(logits, labels, [2, 2]).item() == pytest.approx((pointwise + listwise).item(), abs=1e-6)


def test_the_reader_weights_follow_where_the_reader_ranks_better():
    rng = np.random.default_rng(0)
    head, both = {}, {}
    for name in ("a", "b"):
        head[name], both[name] = [], []
        for _ in range(60):
            labels = np.zeros(5, dtype=np.int64)
            labels[rng.integers(5)] = 1
            noise = rng.normal(size=5)
            reader = 3.0 * labels + 0.3 * rng.normal(size=5)  # the reader sees the answer; the head is noise
            doc = rng.normal()  # the head tells documents apart a little, the reader clearly
            head[name].append(ScoredExample("asked", True, doc + 0.5, noise, labels))
            both[name].append(ScoredExample("asked", True, doc + 0.5 + reader.max(), noise + reader, labels))
            head[name].append(ScoredExample("unrelated", False, doc - 0.5, noise, np.zeros(5, dtype=np.int64)))
            both[name].append(ScoredExample("unrelated", False, doc - 2.5, noise - 2.0, np.zeros(5, dtype=np.int64)))
    mix = fit_reader_mix(head, both)
    assert mix.slot_weight == 2.0  # the smallest weight that ranks every answer first here
    assert mix.slot_map["4.0"]["a"] > mix.slot_map["0.0"]["a"] + 0.3
    assert mix.doc_weight > 0
    combined = mixed(head["a"], reader_parts(head["a"], both["a"]), (1.0, 1.0))
    for e, b in zip(combined, both["a"]):
        assert e.slot_logits == pytest.approx(b.slot_logits) and e.doc_logit == pytest.approx(b.doc_logit)
