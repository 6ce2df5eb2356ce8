import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from spicy_lentil import SpicyLentil
from spicy_lentil.data import DataError, load_data
from spicy_lentil.index import CorpusIndex, StaleIndexError
from spicy_lentil.training import Trainer, TrainingArguments
from tests.synthetic import write_dataset


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return write_dataset(tmp_path_factory.mktemp("synthetic"))


@pytest.fixture(scope="module")
def index(dataset, lentil, tmp_path_factory):
    return CorpusIndex.build(dataset / "corpus.jsonl", tmp_path_factory.mktemp("index"), lentil.encoder, lentil.slotter,
                             shard_size=6, show_progress_bar=False)


def make_trainer(dataset, index, output, epochs, validation=True):
    lentil = SpicyLentil.new(seed=0)
    args = TrainingArguments(output=str(output), epochs=epochs, queries_per_step=4, negatives=3, negative_pool=6,
                             candidates=10, warmup_steps=2, learning_rate=3e-3)
    train = load_data(dataset, "train")
    val = load_data(dataset, "val") if validation else None
    return Trainer(lentil, args, train, index, val)


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
    idf = trainer.lentil.model.pathways["prehension"].idf
    tokenizer = trainer.lentil.encoder.tokenizer
    the, insulin = tokenizer.convert_tokens_to_ids(["the", "insulin"])
    assert idf[insulin] > idf[the] > 0 and idf[tokenizer.cls_token_id] == 0


def test_resume_matches_an_uninterrupted_run(dataset, index, tmp_path):
    make_trainer(dataset, index, tmp_path / "straight", epochs=3).train()

    def interrupt(epoch):
        if epoch == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        make_trainer(dataset, index, tmp_path / "resumed", epochs=3).train(after_epoch=interrupt)
    make_trainer(dataset, index, tmp_path / "resumed", epochs=3).train(resume=True)
    straight = load_file(tmp_path / "straight" / "checkpoints" / "epoch-003" / "model.safetensors")
    resumed = load_file(tmp_path / "resumed" / "checkpoints" / "epoch-003" / "model.safetensors")
    assert straight.keys() == resumed.keys()
    for key in straight:  # CPU reductions are not bit-exact from run to run; a resume bug moves weights by 1e-2
        assert torch.allclose(straight[key], resumed[key], atol=1e-4), key
    log = [json.loads(line) for line in (tmp_path / "resumed" / "training_log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in log] == [1, 2, 3]
    assert "validation" in log[0] and "ndcg@10" in log[0]["validation"]


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
    rebuilt = CorpusIndex.build(dataset / "corpus.jsonl", folder, lentil.encoder, lentil.slotter, show_progress_bar=False)
    assert rebuilt.manifest["encoder"] == lentil.encoder.name and len(rebuilt) == len(index)


def test_indexed_rerank_matches_encoding_on_the_fly(dataset, index, lentil):
    """The index's stored, packed encodings score documents as encoding them afresh does."""
    query = "Does caffeine act on adenosine receptors?"
    docs = np.arange(6)
    indexed = lentil.rerank_indexed(lentil._encode_query(query), index, docs)
    fresh = lentil.fields(query, [index.document(int(d)) for d in docs])
    for a, b in zip(indexed, fresh):
        assert [s.text for s in a.slots] == [s.text for s in b.slots]
        assert a.score == pytest.approx(b.score, abs=1e-4)
        assert np.allclose([s.score for s in a.slots], [s.score for s in b.slots], atol=1e-4)


def test_second_search_runs_no_document_encoding(dataset, index, lentil):
    calls = []
    original = lentil.encoder.model.encode
    lentil.encoder.model.encode = lambda texts, **kw: calls.append(list(texts)) or original(texts, **kw)
    try:
        results = lentil.search(index, "Does caffeine act on adenosine receptors?", top_k=3, candidates=8)
    finally:
        lentil.encoder.model.encode = original
    assert all(len(batch) == 1 for batch in calls)  # only the query was encoded
    assert len(results) == 3
    for result in results:
        for slot in result["field"].slots:
            assert result["text"][slot.start:slot.end] == slot.text


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
    rows = [{"query": "what lowers cholesterol", "text": "Statins lower LDL cholesterol.", "label": 1},
            {"query": "what lowers cholesterol", "text": "Salt raises blood pressure.", "label": 0}]
    pairs.write_text("".join(json.dumps(r) + "\n" for r in rows))
    data = load_data(pairs, "train", cache_dir=tmp_path / "cache")
    assert len(data.corpus) == 2 and len(data.queries) == 1
    assert list(data.qrels.values())[0] == {next(k for k, d in data.corpus.items() if "Statins" in d["text"]): 1,
                                            next(k for k, d in data.corpus.items() if "Salt" in d["text"]): 0}
    assert data.corpus_path.is_file()
