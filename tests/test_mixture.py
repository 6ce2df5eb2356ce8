"""Training on a mixture of datasets, the fail-safe residual head, and tuned encoder weights."""

import collections
import json

import numpy as np
import pytest
import torch

from spicy_lentil import SpicyLentil
from spicy_lentil.corpus.builder import build_index
from spicy_lentil.errors import ModelLoadError
from spicy_lentil.network.config import SpicyLentilConfig
from spicy_lentil.network.encoder import ENCODER_WEIGHTS_NAME
from spicy_lentil.training.data import load_data
from spicy_lentil.training.encoder_tuning import EncoderTuningArguments, sentence_triplets, tune_encoder
from spicy_lentil.training.mixture import TrainingSet, parse_mix, selection_score
from spicy_lentil.training.trainer import Trainer
from tests.synthetic import OTHER_TOPICS, tiny_training, write_dataset


@pytest.fixture(scope="module")
def two_datasets(tmp_path_factory, lentil):
    folders = {
        "health": write_dataset(tmp_path_factory.mktemp("data") / "health"),
        "places": write_dataset(
            tmp_path_factory.mktemp("data") / "places", OTHER_TOPICS, prefix="p", unanswerable=True
        ),
    }
    indexes = {
        name: build_index(
            folder / "corpus.jsonl", folder / "index", lentil.encoder, lentil.slotter, show_progress_bar=False
        )
        for name, folder in folders.items()
    }
    return folders, indexes


def mixture_trainer(two_datasets, output, weights=(1.0, 1.0), epochs=1):
    folders, indexes = two_datasets
    sets = [
        TrainingSet(load_data(folders[name], "train"), indexes[name], load_data(folders[name], "val"), weight)
        for name, weight in zip(("health", "places"), weights)
    ]
    args = tiny_training(output, epochs, negative_pool=5, candidates=5)
    return Trainer(SpicyLentil.new(seed=0), args, sets)


def test_each_query_draws_negatives_and_prior_from_its_own_corpus(two_datasets, tmp_path):
    trainer = mixture_trainer(two_datasets, tmp_path / "run")
    _, indexes = two_datasets
    own = {0: "health", 1: "places"}
    ranked = [e for e in trainer.examples if "positives" in e]
    assert {e["set"] for e in ranked} == {0, 1}
    for example in ranked:
        index = indexes[own[example["set"]]]
        ids = [index.doc_ids[d] for d in example["positives"] + example["negatives"]]
        assert all(i.startswith("p") == (example["set"] == 1) for i in ids)  # places ids start with "p"
        assert example["query_id"].startswith("p") == (example["set"] == 1)
        assert set(example["prior"]) == set(example["positives"] + example["negatives"])
    unanswered = [e for e in trainer.examples if "unanswered" in e]
    assert len(unanswered) == len(OTHER_TOPICS) and all(e["set"] == 1 for e in unanswered)
    # A batch of unanswered questions asks every slot of their documents to score low.
    batch = trainer.batch(unanswered[:2], np.random.default_rng(0))
    targets = batch["targets"]
    assert targets.ranked_rows == 0
    assert bool((targets.slot_weight[targets.slot_mask] > 0).all()) and float(targets.slot_target.sum()) == 0


def test_mix_weights_decide_how_often_each_dataset_is_drawn(two_datasets, tmp_path):
    trainer = mixture_trainer(two_datasets, tmp_path / "run", weights=(3.0, 1.0))
    trainer.steps_per_epoch = 400  # many draws, so the shares are measured tightly
    steps, _ = trainer.epoch_steps(1)
    counts = collections.Counter(trainer.examples[step[0]]["set"] for step in steps)
    assert all(len({trainer.examples[i]["set"] for i in step}) == 1 for step in steps)  # one dataset per step
    assert 0.69 < counts[0] / len(steps) < 0.81


def test_mixture_training_validates_every_dataset_and_selects_on_the_macro_average(two_datasets, tmp_path):
    trainer = mixture_trainer(two_datasets, tmp_path / "run")
    state = trainer.train()
    log = [json.loads(line) for line in (tmp_path / "run" / "training_log.jsonl").read_text().splitlines()]
    validation = log[0]["validation"]
    assert set(validation) == {"health", "places"}
    assert (
        log[0]["selection"] == pytest.approx(selection_score(validation, trainer.sets)) == pytest.approx(state["best"])
    )
    report = json.loads((tmp_path / "run" / "calibration.json").read_text())
    assert set(report["per_dataset"]) == {"health", "places"}


def test_selection_counts_ndcg_only_where_ranking_is_meaningful(two_datasets):
    folders, indexes = two_datasets
    sets = [
        TrainingSet(load_data(folders["health"], "train"), indexes["health"]),
        TrainingSet(load_data(folders["places"], "train"), indexes["places"], rank_documents=False),
    ]
    validation = {"health": {"slot_map": 0.5, "ndcg@10": 0.9}, "places": {"slot_map": 0.7, "ndcg@10": 0.1}}
    assert selection_score(validation, sets) == pytest.approx((0.5 + 0.7 + 0.9) / 3)


@pytest.mark.parametrize(
    "spec, message",
    [
        ("health=1,places", "not NAME=WEIGHT"),
        ("health=x", "not a number"),
        ("health=0", "> 0"),
        ("health=-1", "> 0"),
        ("nowhere=1", "unknown dataset"),
        ("health=1,health=2", "twice"),
        ("health=nan", "> 0"),
    ],
)
def test_a_bad_mix_is_refused_with_the_reason(spec, message):
    with pytest.raises(ValueError, match=message):
        parse_mix(spec, ["health", "places"])
    assert parse_mix("places=2.5", ["health", "places"]) == {"health": 1.0, "places": 2.5}


def test_train_command_reports_a_bad_mix_in_one_line(two_datasets, tmp_path, capsys):
    from spicy_lentil.frontends.cli import main

    folders, _ = two_datasets
    code = main(
        [
            "train",
            str(folders["health"]),
            str(folders["places"]),
            "--output",
            str(tmp_path / "run"),
            "--mix",
            "health=1,oceans=2",
            "--cache-dir",
            str(tmp_path / "cache"),
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and "unknown dataset 'oceans'" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_an_untrained_residual_head_scores_exactly_the_zero_shot_evidence():
    from tests.conftest import make_input

    model = SpicyLentil.new(seed=0).model.eval()
    x = make_input()
    with torch.no_grad():
        output = model(x)
        evidence = model.evidence(x)
    assert torch.allclose(output.slot_logits[x.slot_mask], evidence[x.slot_mask], atol=1e-6)
    # However large the pathways' correction grows, the score stays within the bound of the evidence.
    with torch.no_grad():
        model.slot_head.weight.normal_(0.0, 20.0, generator=torch.Generator().manual_seed(0))
        moved = model(x).slot_logits
    gap = (moved - evidence)[x.slot_mask].abs()
    assert float(gap.max()) <= model.config.correction_bound + 1e-5 and float(gap.max()) > 1.0


def test_a_checkpoint_without_the_new_keys_loads_as_the_legacy_design(tmp_path):
    lentil = SpicyLentil.new(SpicyLentilConfig(zero_shot_residual=False, slot_salience=True, slot_contrast=True))
    lentil.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    for key in ("zero_shot_residual", "slot_salience", "slot_contrast", "correction_bound", "encoder_weights"):
        config.pop(key)
    (tmp_path / "config.json").write_text(json.dumps(config))
    reloaded = SpicyLentil.from_pretrained(tmp_path)
    assert reloaded.model.salience is not None and not hasattr(reloaded.model, "evidence")
    field = lentil.field("Does salt raise blood pressure?", "Salt raises blood pressure. Rain is wet.")
    again = reloaded.field("Does salt raise blood pressure?", "Salt raises blood pressure. Rain is wet.")
    assert [s.score for s in field.slots] == pytest.approx([s.score for s in again.slots], abs=1e-6)


def test_tuned_encoder_weights_travel_with_the_model_and_keep_its_scores(two_datasets, tmp_path):
    folders, _ = two_datasets
    splits = [load_data(folders["health"], "train")]
    triplets = sentence_triplets(splits)
    assert len(triplets["anchor"]) == len(splits[0].slot_qrels)
    assert all(p != n for p, n in zip(triplets["positive"], triplets["negative"]))
    path = tune_encoder(SpicyLentil.new().encoder.name, splits, tmp_path / "tuned", EncoderTuningArguments(epochs=1))
    lentil = SpicyLentil.new(seed=0, encoder_weights=path)
    plain = SpicyLentil.new(seed=0)
    query, document = "Does iron treat anaemia?", "We found that iron treats anaemia in most participants. Rain is wet."
    tuned_field, plain_field = lentil.field(query, document), plain.field(query, document)
    assert [s.score for s in tuned_field.slots] != pytest.approx([s.score for s in plain_field.slots], abs=1e-4)
    assert lentil.encoder.weights_digest != plain.encoder.weights_digest  # an index of the plain encoder is stale
    lentil.save_pretrained(tmp_path / "model")
    assert json.loads((tmp_path / "model" / "config.json").read_text())["encoder_weights"] == ENCODER_WEIGHTS_NAME
    reloaded = SpicyLentil.from_pretrained(tmp_path / "model")
    again = reloaded.field(query, document)
    assert again.score == pytest.approx(tuned_field.score, abs=1e-6)
    assert [s.score for s in again.slots] == pytest.approx([s.score for s in tuned_field.slots], abs=1e-6)
    # The sentence-level yardstick over the same weights ranks slots by exactly the tuned encoder's cosine.
    from spicy_lentil.training.baselines import SentenceBiEncoder

    yardstick = SentenceBiEncoder(lentil.encoder.name, path)
    slots = [s.text for s in tuned_field.slots]
    q, *s = lentil.encoder.encode([query, *slots])
    assert yardstick.slot_scores(query, slots) == pytest.approx([float(v.embedding @ q.embedding) for v in s], abs=1e-5)


def test_mined_negatives_are_the_other_sentences_a_similarity_ranks_closest(two_datasets):
    folders, _ = two_datasets
    data = load_data(folders["health"], "train")

    def overlap(query, sentences):  # a stand-in encoder: shared words with the query
        words = set(query.lower().split())
        return [len(words & set(s.lower().split())) for s in sentences]

    mined = sentence_triplets([data], similarity=overlap)
    keys = [k for k in sorted(data.slot_qrels) if k[0] in data.queries and data.corpus[k[1]].get("sentences")]
    assert len(mined["anchor"]) == len(keys)
    for (query_id, doc_id), negative in zip(keys, mined["negative"]):
        sentences = data.corpus[doc_id]["sentences"]
        others = [s for i, s in enumerate(sentences) if i not in data.slot_qrels[(query_id, doc_id)]]
        if others:  # the mined negative is the document's closest non-answer, never a labelled sentence
            assert negative in others
            assert overlap(data.queries[query_id], [negative]) == [max(overlap(data.queries[query_id], others))]
    with pytest.raises(ValueError, match="negatives must be one of random, mined"):
        tune_encoder(SpicyLentil.new().encoder.name, [data], "unused", EncoderTuningArguments(negatives="hardest"))


def test_tuning_with_mined_negatives_encodes_every_compared_text_and_records_its_recipe(two_datasets, tmp_path):
    from safetensors import safe_open

    folders, _ = two_datasets
    splits = [load_data(folders["health"], "train"), load_data(folders["places"], "train")]
    path = tune_encoder(SpicyLentil.new().encoder.name, splits, tmp_path / "tuned",
                        EncoderTuningArguments(epochs=1, negatives="mined"))
    with safe_open(str(path), "pt") as weights:
        meta = weights.metadata()
    assert json.loads(meta["args"])["negatives"] == "mined"
    assert int(meta["triplets"]) == len(sentence_triplets(splits)["anchor"])


def test_encoder_weights_outside_the_model_folder_are_refused(tmp_path):
    SpicyLentil.new().save_pretrained(tmp_path / "model")
    config = json.loads((tmp_path / "model" / "config.json").read_text())
    (tmp_path / "elsewhere.safetensors").write_bytes(b"")
    config["encoder_weights"] = "../elsewhere.safetensors"
    (tmp_path / "model" / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelLoadError, match="encoder_weights"):
        SpicyLentil.from_pretrained(tmp_path / "model")
