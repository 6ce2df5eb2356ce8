import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from spicy_lentil import SpicyLentil
from spicy_lentil.corpus.builder import build_index
from spicy_lentil.corpus.first_stage import FirstStage
from spicy_lentil.corpus.index import CorpusIndex, StaleIndexError
from spicy_lentil.errors import DataError
from spicy_lentil.network.encoder import EncoderCalls
from spicy_lentil.training.calibration import expected_calibration_error, fit_calibration, fit_first_stage_trust, platt
from spicy_lentil.training.data import load_data
from spicy_lentil.training.evaluation import evaluate, read_answer_cases
from spicy_lentil.training.mixture import TrainingSet
from spicy_lentil.training.trainer import Trainer
from tests.synthetic import tiny_training, write_dataset

EVERYDAY = Path(__file__).resolve().parents[1] / "data" / "everyday.jsonl"


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return write_dataset(tmp_path_factory.mktemp("synthetic"))


@pytest.fixture(scope="module")
def index(dataset, lentil, tmp_path_factory):
    return build_index(
        dataset / "corpus.jsonl",
        tmp_path_factory.mktemp("index"),
        lentil.encoder,
        lentil.slotter,
        shard_size=6,
        show_progress_bar=False,
    )


def make_trainer(dataset, index, output, epochs, validation=True):
    lentil = SpicyLentil.new(seed=0)
    args = tiny_training(output, epochs)
    train = load_data(dataset, "train")
    val = load_data(dataset, "val") if validation else None
    return Trainer(lentil, args, [TrainingSet(train, index, val)])


def test_training_lowers_the_loss(dataset, index, tmp_path):
    trainer = make_trainer(dataset, index, tmp_path / "run", epochs=4, validation=False)
    trainer.train()
    log = [json.loads(line) for line in (tmp_path / "run" / "training_log.jsonl").read_text().splitlines()]
    assert len(log) == 4
    assert log[-1]["loss"] < log[0]["loss"]
    assert log[-1]["slot"] < log[0]["slot"]
    assert log[-1]["slot_ranking"] < log[0]["slot_ranking"]  # rationales climb within their documents
    assert (tmp_path / "run" / "model.safetensors").is_file()
    # The IDF table was learned from the corpus: special tokens weigh nothing, rare words weigh more than "the".
    idf = trainer.lentil.model.evidence.idf
    assert torch.equal(idf, trainer.lentil.model.pathways["prehension"].idf)
    tokenizer = trainer.lentil.encoder.tokenizer
    the, insulin = tokenizer.convert_tokens_to_ids(["the", "insulin"])
    assert idf[insulin] > idf[the] > 0 and idf[tokenizer.cls_token_id] == 0


def test_resume_matches_an_uninterrupted_run(dataset, index, tmp_path):
    # One thread: multi-threaded CPU reductions are not bit-exact from run to run (two straight
    # runs differ by ~3e-4), which would hide a small resume bug. On one thread they are exact.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        make_trainer(dataset, index, tmp_path / "straight", epochs=3).train()

        def interrupt(epoch):
            if epoch == 1:
                raise KeyboardInterrupt

        with pytest.raises(KeyboardInterrupt):
            make_trainer(dataset, index, tmp_path / "resumed", epochs=3).train(after_epoch=interrupt)
        make_trainer(dataset, index, tmp_path / "resumed", epochs=3).train(resume=True)
    finally:
        torch.set_num_threads(threads)
    straight = load_file(tmp_path / "straight" / "checkpoints" / "epoch-003" / "model.safetensors")
    resumed = load_file(tmp_path / "resumed" / "checkpoints" / "epoch-003" / "model.safetensors")
    assert straight.keys() == resumed.keys()
    for key in straight:
        assert torch.allclose(straight[key], resumed[key], atol=1e-6), (
            key,
            float((straight[key] - resumed[key]).abs().max()),
        )
    log = [json.loads(line) for line in (tmp_path / "resumed" / "training_log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in log] == [1, 2, 3]
    assert "validation" in log[0] and all("ndcg@10" in m for m in log[0]["validation"].values())
    # The kept model was calibrated on the validation split, and the fitted scaling is what it loads with.
    report = json.loads((tmp_path / "straight" / "calibration.json").read_text())
    kept = load_file(tmp_path / "straight" / "model.safetensors")
    assert report["document_examples"] > 0 and report["slot_examples"] > 0
    assert torch.allclose(kept["doc_calibration"], torch.tensor(report["document"]))
    assert torch.allclose(kept["slot_calibration"], torch.tensor(report["slot"]))
    trust = report["first_stage_trust"]  # fitted first: the synthetic corpus's ranking counts
    assert torch.allclose(kept["first_stage_trust"], torch.tensor([trust["weight"]]))


def test_platt_scaling_recovers_a_known_distortion():
    rng = np.random.default_rng(0)
    true_logits = rng.normal(0.0, 2.0, 20000)
    labels = rng.random(20000) < 1 / (1 + np.exp(-true_logits))
    scale, shift = platt(3.0 * true_logits + 1.0, labels)  # overconfident and biased
    assert scale == pytest.approx(1 / 3, rel=0.1) and shift == pytest.approx(-1 / 3, abs=0.1)
    before = expected_calibration_error(1 / (1 + np.exp(-(3.0 * true_logits + 1.0))), labels)
    after = expected_calibration_error(1 / (1 + np.exp(-(scale * (3.0 * true_logits + 1.0) + shift))), labels)
    assert after < 0.02 < before
    assert platt(-true_logits, labels) == (1.0, 0.0)  # a scale that would invert the ranking is refused
    assert platt(true_logits, np.ones(20000)) == (1.0, 0.0)  # one class: nothing to fit


def test_calibration_keeps_every_ranking(dataset, index):
    lentil = SpicyLentil.from_pretrained()
    query = "Does caffeine act on adenosine receptors?"
    docs = np.arange(len(index))
    before = lentil.rerank_indexed(lentil.encode_query(query), index, docs)
    cases = read_answer_cases(EVERYDAY)[:6]
    report = fit_calibration(
        lentil, [(load_data(dataset, "val"), index)], candidates=10, answer_cases={"everyday": cases}
    )
    after = lentil.rerank_indexed(lentil.encode_query(query), index, docs)
    assert report.document[0] > 0 and report.slot[0] > 0
    val = load_data(dataset, "val")
    with pytest.raises(ValueError, match="named like a split"):
        fit_calibration(lentil, [(val, index)], answer_cases={val.name: cases})
    # The answer cases are fitted on as one more dataset: each case's paragraph and its unrelated one.
    assert report.per_dataset["everyday"]["document"]["examples"] == 12
    assert report.per_dataset["everyday"]["slot"]["examples"] == sum(len(c.sentences) + len(c.unrelated) for c in cases)

    def keeps_order(old: list[float], new: list[float]) -> bool:
        order = np.argsort(old, kind="stable")
        return bool(np.all(np.diff(np.asarray(new)[order]) >= 0))

    assert keeps_order([f.score for f in before], [f.score for f in after])
    assert [f.score for f in after] != [f.score for f in before]
    for a, b in zip(before, after):
        assert keeps_order([s.score for s in a.slots], [s.score for s in b.slots])


def _doc_logits(lentil, fields) -> np.ndarray:
    scale, shift = lentil.model.doc_calibration.tolist()
    scores = np.array([f.score for f in fields], dtype=np.float64)
    return (np.log(scores) - np.log1p(-scores) - shift) / scale


def test_first_stage_trust_moves_only_reranked_document_scores(own_lentil, index):
    query = "Does caffeine act on adenosine receptors?"
    own_lentil.model.first_stage_trust.zero_()  # the shipped model's own trust: the head alone first
    encoding = own_lentil.encode_query(query)
    found = FirstStage().retrieve(index, query, encoding.embedding.numpy(), len(index))
    with_prior, bare = (own_lentil.rerank_indexed(encoding, index, found.docs, p) for p in (found.prior, None))
    own_lentil.model.first_stage_trust.fill_(0.5)
    trusted, trusted_bare = (own_lentil.rerank_indexed(encoding, index, found.docs, p) for p in (found.prior, None))
    gap = found.prior[:, -1].max() - found.prior[:, -1]
    assert np.allclose(_doc_logits(own_lentil, trusted), _doc_logits(own_lentil, with_prior) - 0.5 * gap, atol=1e-3)
    assert trusted[0].score == with_prior[0].score  # the query's best candidate keeps the head's score
    assert [f.score for f in trusted_bare] == [f.score for f in bare]  # no prior: the head's own score
    # The gap is measured over the whole candidate list, whatever the batches it is scored in.
    small_batches = own_lentil.rerank_indexed(encoding, index, found.docs, found.prior, batch_size=2)
    assert np.allclose([f.score for f in small_batches], [f.score for f in trusted], atol=1e-6)
    for a, b in zip(with_prior, trusted):
        # A slot's chance of answering within its document never reads the first stage; its score follows
        # the document's, of which it is the share (`model.slot_probability`).
        assert [s.score / a.score for s in a.slots] == pytest.approx([s.score / b.score for s in b.slots], rel=1e-4)


def test_first_stage_trust_is_fitted_by_the_ranking_it_gives(own_lentil, dataset, index):
    val = load_data(dataset, "val")
    with torch.no_grad():  # a document head that says nothing: every candidate gets the same logit
        own_lentil.model.doc_evidence.weight.zero_()
        own_lentil.model.doc_head[-1].weight.zero_()
    report = fit_first_stage_trust(own_lentil, [(val, index)], candidates=10)
    assert report.weight > 0 and report.ndcg_at_10[1] > report.ndcg_at_10[0]
    assert torch.allclose(own_lentil.model.first_stage_trust, torch.tensor([report.weight]))
    # What the fit reports is what the model now ranks at.
    assert evaluate(own_lentil, val, index, 10, show_progress_bar=False).model["ndcg@10"] == pytest.approx(
        report.ndcg_at_10[1], abs=1e-6
    )


def test_a_folder_saved_before_the_first_stage_trust_loads_with_none(lentil, tmp_path):
    lentil.save_pretrained(tmp_path)
    weights = load_file(tmp_path / "model.safetensors")
    weights.pop("first_stage_trust")
    save_file(weights, tmp_path / "model.safetensors")
    old = SpicyLentil.from_pretrained(tmp_path)
    assert old.model.first_stage_trust.tolist() == [0.0]


def test_index_staleness(dataset, index, lentil, tmp_path):
    assert not index.is_stale_for(dataset / "corpus.jsonl")
    changed = tmp_path / "corpus.jsonl"
    changed.write_text((dataset / "corpus.jsonl").read_text().replace("cohort", "group"))
    assert index.is_stale_for(changed)
    manifest = json.loads((index.folder / "manifest.json").read_text())
    manifest["encoder"] = "some-other-model"
    folder = tmp_path / "copy"
    import shutil

    shutil.copytree(index.folder, folder)
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(StaleIndexError, match="encoder"):
        CorpusIndex.load(folder, lentil.encoder, lentil.slotter)
    # Building over a stale folder rebuilds it instead of trusting it.
    rebuilt = build_index(
        dataset / "corpus.jsonl", folder, lentil.encoder, lentil.slotter, show_progress_bar=False
    )
    assert rebuilt.manifest["encoder"] == lentil.encoder.name and len(rebuilt) == len(index)


def test_indexed_rerank_matches_encoding_on_the_fly(dataset, index, lentil):
    """The index's stored, packed encodings score documents as encoding them afresh does."""
    query = "Does caffeine act on adenosine receptors?"
    docs = np.arange(6)
    indexed = lentil.rerank_indexed(lentil.encode_query(query), index, docs)
    fresh = lentil.fields(query, [index.document(int(d)) for d in docs])
    for a, b in zip(indexed, fresh):
        assert [s.text for s in a.slots] == [s.text for s in b.slots]
        assert a.score == pytest.approx(b.score, abs=1e-4)
        assert np.allclose([s.score for s in a.slots], [s.score for s in b.slots], atol=1e-4)


def test_stored_rows_read_the_same_with_and_without_pread(index, monkeypatch):
    import os

    with_pread = [index.document_encoding(i) for i in range(len(index))]
    monkeypatch.delattr(os, "preadv", raising=False)  # systems without it read through the memory map
    for i, a in enumerate(with_pread):
        b = index.document_encoding(i)
        assert a.tokens.dtype == b.tokens.dtype == torch.float16
        assert torch.equal(a.tokens, b.tokens) and torch.equal(a.slots, b.slots)
        assert torch.equal(a.token_slot, b.token_slot) and torch.equal(a.token_ids, b.token_ids)
        assert a.tokens.shape[0] == index.token_count(i) == a.token_slot.shape[0]


def test_second_search_runs_no_document_encoding(dataset, index, lentil):
    query = "Does caffeine act on adenosine receptors?"
    lentil.encoder.clear_cache()
    lentil.encoder.calls.reset()
    results = lentil.search(index, query, top_k=3, candidates=8)
    assert lentil.encoder.calls.snapshot() == EncoderCalls(batches=1, texts=1, cached=0)  # only the query was encoded
    assert len(results) == 3
    # Fields are built for the returned documents only: each must be its own document's field.
    docs = [result["corpus_id"] for result in results]
    for result, full in zip(results, lentil.rerank_indexed(lentil.encode_query(query), index, docs)):
        assert [(s.text, s.start, s.end) for s in result["field"].slots] == [
            (s.text, s.start, s.end) for s in full.slots
        ]
        # Scored alone (no first-stage prior) the document's probability differs; each slot's share of it does not.
        shares = [s.score / result["field"].score for s in result["field"].slots]
        assert np.allclose(shares, [s.score / full.score for s in full.slots], rtol=1e-4)
        for slot in result["field"].slots:
            assert result["text"][slot.start : slot.end] == slot.text


def test_bad_data_files(dataset, tmp_path):
    with pytest.raises(DataError, match="missing file"):
        load_data(dataset, "test")
    broken = tmp_path / "broken"
    import shutil

    shutil.copytree(dataset, broken)
    (broken / "qrels" / "train.tsv").write_text("query-id\tcorpus-id\tscore\nq0-0\tnope1\t1\nq0-1\tnope2\t1\n")
    with pytest.raises(DataError, match=r"2 unknown corpus id\(s\), first: \['nope1', 'nope2'\]"):
        load_data(broken, "train")
    (broken / "queries.jsonl").write_text('{"id": "x", "text": "no _id column"}\n')
    with pytest.raises(DataError, match="missing column"):
        load_data(broken, "train")
    pairs = tmp_path / "pairs.csv"
    pairs.write_text("query,text\nq,t\n")
    with pytest.raises(DataError, match=r"missing column\(s\) \['label'\]"):
        load_data(pairs, "train")
    with pytest.raises(DataError, match="not found"):
        load_data(tmp_path / "absent.jsonl", "train")


def test_pairs_file_becomes_a_dataset(tmp_path):
    pairs = tmp_path / "pairs.jsonl"
    rows = [
        {"query": "what lowers cholesterol", "text": "Statins lower LDL cholesterol.", "label": 1},
        {"query": "what lowers cholesterol", "text": "Salt raises blood pressure.", "label": 0},
    ]
    pairs.write_text("".join(json.dumps(r) + "\n" for r in rows))
    data = load_data(pairs, "train", cache_dir=tmp_path / "cache")
    assert len(data.corpus) == 2 and len(data.queries) == 1
    assert list(data.qrels.values())[0] == {
        next(k for k, d in data.corpus.items() if "Statins" in d["text"]): 1,
        next(k for k, d in data.corpus.items() if "Salt" in d["text"]): 0,
    }
    assert data.corpus_path.is_file()


def test_a_pairs_file_with_a_split_column_gives_each_split_its_own_queries_over_one_corpus(tmp_path):
    pairs = tmp_path / "pairs.csv"
    pairs.write_text(
        "query,text,label,split\n"
        "what lowers cholesterol,Statins lower LDL cholesterol.,1,train\n"
        "what lowers cholesterol,Salt raises blood pressure.,0,train\n"
        "what raises blood pressure,Salt raises blood pressure.,1,val\n"
        "what raises blood pressure,Tea contains caffeine.,0,val\n"
    )
    train, val = (load_data(pairs, split, cache_dir=tmp_path / "cache") for split in ("train", "val"))
    assert list(train.queries.values()) == ["what lowers cholesterol"]
    assert list(val.queries.values()) == ["what raises blood pressure"]
    assert train.corpus == val.corpus and len(val.corpus) == 3  # one corpus, one index, for every split
    salt = next(k for k, d in val.corpus.items() if "Salt" in d["text"])
    assert list(val.qrels.values())[0][salt] == 1 and list(train.qrels.values())[0][salt] == 0
    with pytest.raises(DataError, match=r"no row of split 'test'; its splits are \['train', 'val'\]"):
        load_data(pairs, "test", cache_dir=tmp_path / "cache")


def test_eval_command_writes_metrics_and_trec_runs(dataset, tmp_path, capsys):
    from spicy_lentil.frontends.cli import main
    from spicy_lentil.training.evaluation import ranking_metrics, read_run

    code = main(
        [
            "eval",
            str(dataset),
            "--split",
            "val",
            "--candidates",
            "5",
            "--output",
            str(tmp_path / "metrics.json"),
            "--runs",
            str(tmp_path / "runs"),
            "--cache-dir",
            str(tmp_path / "cache"),
        ]
    )
    assert code == 0
    assert "spicy_lentil" in capsys.readouterr().out  # the table
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert {"ndcg@10", "recall@100", "mrr@10", "slot_map", "slot_mrr", "slot_auc"} <= set(metrics["model"])
    assert [p.name for p in (tmp_path / "runs").iterdir()] == ["spicy_lentil.run"]
    run = read_run(tmp_path / "runs" / "spicy_lentil.run")
    val = load_data(dataset, "val")
    assert set(run) == set(val.queries) and all(len(docs) == 5 for docs in run.values())
    assert ranking_metrics(val.qrels, run)["ndcg@10"] == pytest.approx(metrics["model"]["ndcg@10"], abs=1e-6)


def test_train_command_sets_the_hidden_size_and_rejects_a_bad_one(dataset, tmp_path, capsys):
    from spicy_lentil.frontends.cli import main

    common = [str(dataset), "--epochs", "1", "--queries-per-step", "4", "--cache-dir", str(tmp_path / "cache")]
    assert main(["train", *common, "--output", str(tmp_path / "bad"), "--hidden-dim", "100"]) == 2
    err = capsys.readouterr().err
    assert "multiple of 9" in err and "Traceback" not in err
    assert main(["train", *common, "--output", str(tmp_path / "run"), "--hidden-dim", "36"]) == 0
    assert json.loads((tmp_path / "run" / "config.json").read_text())["hidden_dim"] == 36
    model = SpicyLentil.from_pretrained(tmp_path / "run").model
    assert model.slot_head.in_features == 36 and model.fusion.out_norm.normalized_shape == (36,)


def test_the_train_command_runs_the_recipe_its_flags_describe():
    from spicy_lentil.frontends.cli import build_parser
    from spicy_lentil.frontends.commands import recipe_from_args
    from spicy_lentil.training.arguments import TrainingArguments
    from spicy_lentil.training.encoder_tuning import EncoderTuningArguments
    from spicy_lentil.training.reader_training import ReaderTrainingArguments
    from spicy_lentil.training.recipe import Recipe

    parser = build_parser()
    bare = recipe_from_args(parser.parse_args(["train", "a", "b", "--output", "out"]))
    assert bare == Recipe(data=["a", "b"], training=TrainingArguments(output="out"))  # no default drifts
    flagged = recipe_from_args(parser.parse_args([
        "train", "a", "--output", "out", "--tune-encoder", "--tune-negatives", "mined", "--epochs", "3",
        "--rank-documents", "a, b", "--validation-split", "", "--negatives", "5", "--fusion", "gated_unit",
        "--calibration-cases", "cases.jsonl", "--reader-epochs", "0.5",
    ]))
    assert flagged.training.calibration_cases == "cases.jsonl"
    assert flagged.reader == ReaderTrainingArguments(epochs=0.5)
    assert flagged.tune_encoder == EncoderTuningArguments(negatives="mined")
    assert (flagged.training.epochs, flagged.training.negatives, flagged.model.fusion) == (3, 5, "gated_unit")
    assert flagged.rank_documents == ["a", "b"] and flagged.validation_split is None


def test_the_published_default_recipe_narrowed_to_some_datasets_keeps_every_other_flag(tmp_path):
    """What the generalization benchmark trains a missing model with: the default's command on other datasets."""
    from benchmarks.common import DOMAINS, REPO_ROOT, SHARED_DATA
    from benchmarks.default_model import recipe
    from spicy_lentil.training.encoder_tuning import EncoderTuningArguments

    default = recipe(tmp_path / "out", tmp_path / "cache")
    assert default.data == [str(SHARED_DATA / name) for name in DOMAINS] and default.rank_documents == ["scifact"]
    assert default.training.calibration_cases == str(REPO_ROOT / "data" / "everyday.jsonl")
    narrowed = recipe(tmp_path / "out", tmp_path / "cache", ["wikiqa", "selqa"], ["--tune-negatives=mined"])
    assert narrowed.data == [str(SHARED_DATA / "wikiqa"), str(SHARED_DATA / "selqa")]
    assert narrowed.rank_documents is None  # SciFact's corpus ranking only where SciFact is trained on
    assert narrowed.tune_encoder == EncoderTuningArguments(negatives="mined")
    assert narrowed.training == default.training and narrowed.model == default.model
    assert (narrowed.training.output, narrowed.cache_dir) == (str(tmp_path / "out"), str(tmp_path / "cache"))


def test_the_recipe_refuses_what_it_cannot_do_before_training(dataset, tmp_path):
    from spicy_lentil.training.arguments import TrainingArguments
    from spicy_lentil.training.encoder_tuning import EncoderTuningArguments
    from spicy_lentil.training.reader_training import ReaderTrainingArguments
    from spicy_lentil.training.recipe import Recipe, train

    training = TrainingArguments(output=str(tmp_path / "out"))
    with pytest.raises(ValueError, match="cannot be combined with init"):
        train(Recipe([str(dataset)], training, tune_encoder=EncoderTuningArguments(), init="somewhere"), SpicyLentil)
    with pytest.raises(ValueError, match="cannot be combined with init"):
        train(Recipe([str(dataset)], training, reader=ReaderTrainingArguments(), init="somewhere"), SpicyLentil)
    with pytest.raises(ValueError, match="unknown dataset"):
        train(Recipe([str(dataset)], training, rank_documents=["nowhere"]), SpicyLentil)
    cases = tmp_path / "cases.jsonl"
    cases.write_text('{"id": "a", "domain": "d", "query": "q", "sentences": ["s"], "answer": [3], "unrelated": "a"}\n')
    with pytest.raises(DataError, match="cases.jsonl:1: not an answer case"):
        train(Recipe([str(dataset)], replace(training, calibration_cases=str(cases))), SpicyLentil)
    clashing = tmp_path / f"{load_data(dataset, 'train').name}.jsonl"
    clashing.write_text(EVERYDAY.read_text(encoding="utf-8"))
    with pytest.raises(ValueError, match="named like a dataset"):
        train(Recipe([str(dataset)], replace(training, calibration_cases=str(clashing))), SpicyLentil)
    with pytest.raises(ValueError, match="needs a validation split"):
        train(Recipe([str(dataset)], replace(training, calibration_cases=str(EVERYDAY)), validation_split=None),
              SpicyLentil)
    assert not (tmp_path / "out").exists()


def test_retrieve_and_rerank_scores_the_candidates_then_the_asked_documents_they_missed(lentil, index):
    query = "Does caffeine act on adenosine receptors?"
    encoding = lentil.encode_query(query)
    found, positions, fields = lentil.retrieve_and_rerank(encoding, index, query, 3)
    missed = next(p for p in range(len(index)) if p not in positions)
    again, asked, asked_fields = lentil.retrieve_and_rerank(encoding, index, query, 3, also=[positions[1], missed])
    assert positions == found.docs.tolist() and asked == positions + [missed]  # a candidate is not scored twice
    reranked = lentil.rerank_indexed(encoding, index, found.docs, found.prior)  # candidates read their prior
    assert [f.score for f in asked_fields[:3]] == pytest.approx([f.score for f in reranked], abs=1e-6)
    bare = lentil.rerank_indexed(encoding, index, [missed])[0]  # a missed document is scored as a bare one
    assert asked_fields[3].score == pytest.approx(bare.score, abs=1e-6)
    assert [s.score for s in asked_fields[3].slots] == pytest.approx([s.score for s in bare.slots], abs=1e-6)
    search = lentil.search(index, query, top_k=3, candidates=3)
    assert sorted(r["corpus_id"] for r in search) == sorted(positions)


def test_a_recipe_with_a_reader_trains_it_first_and_fits_its_weights_with_the_calibration(dataset, tmp_path):
    from spicy_lentil.network.reader import READER_WEIGHTS_NAME
    from spicy_lentil.training.reader_training import ReaderTrainingArguments
    from spicy_lentil.training.recipe import Recipe, train

    output = tmp_path / "run"
    recipe = Recipe([str(dataset)], tiny_training(output, 1, calibration_cases=str(EVERYDAY)),
                    reader=ReaderTrainingArguments(epochs=1, pairs_per_step=64), cache_dir=str(tmp_path / "cache"))
    train(recipe, SpicyLentil)
    assert (output / READER_WEIGHTS_NAME).is_file()
    calibration = json.loads((output / "calibration.json").read_text())
    mix = calibration["reader_mix"]
    assert set(mix["slot_map"]) == {"0.0", "0.25", "0.5", "1.0", "2.0", "4.0"}
    assert set(mix["slot_map"]["0.0"]) == {load_data(dataset, "val").name, "everyday"}
    trained = SpicyLentil.from_pretrained(output)
    assert trained.model.reader is not None
    assert trained.model.reader_mix.tolist() == pytest.approx([mix["slot_weight"], mix["doc_weight"]])
    assert trained.model.slot_calibration.tolist() == pytest.approx(calibration["slot"])
