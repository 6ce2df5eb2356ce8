"""Faults a batch user meets: bad rows cost only themselves, damaged files get one line, ids follow one rule."""

from __future__ import annotations

import json
import shutil
import threading

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from spicy_lentil.corpus.index import CorpusIndex, StaleIndexError
from spicy_lentil.frontends.cli import main
from spicy_lentil.frontends.engine import DEFAULT_MODEL_DIR

CORPUS = [
    {"_id": "marie", "title": "Marie Curie", "text": "Marie Curie discovered polonium and radium. She won two prizes."},
    {"_id": "bread", "title": "Bread", "text": "Bread rises because yeast makes carbon dioxide. Ovens set the crumb."},
    {"_id": "rivers", "title": None, "text": "Rivers carry sediment to the sea. Deltas form where they slow down."},
    {"_id": 5, "text": "An integer id. It is the text 5."},
    {"_id": "5", "text": "The same id written as a string."},
    {"_id": "marie", "text": "A second row with an id seen before."},
]


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


@pytest.fixture(scope="module")
def index_folder(tmp_path_factory, lentil):
    folder = tmp_path_factory.mktemp("index")
    write_jsonl(folder / "corpus.jsonl", CORPUS)
    assert main(["index", str(folder / "corpus.jsonl"), "--output", str(folder / "index")]) == 1  # two duplicates
    return folder / "index"


def run(argv, capsys):
    """Runs the CLI; returns its status and its stderr without progress bars."""
    status = main([str(a) for a in argv])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return status, "\n".join(line for line in err.splitlines() if "\r" not in line and "it/s]" not in line)


def test_index_and_score_share_one_id_rule(lentil, index_folder, tmp_path, capsys):
    index = CorpusIndex.load(index_folder)
    assert index.doc_ids == ["marie", "bread", "rivers", "5"]  # the first row with an id is kept
    rejects = [json.loads(line) for line in (index_folder / "rejects.jsonl").read_text().splitlines()]
    assert [r["line"] for r in rejects] == [5, 6] and all("duplicate _id" in r["reason"] for r in rejects)
    corpus = tmp_path / "c.jsonl"
    write_jsonl(corpus, CORPUS)
    status, err = run(["score", "--query", "radium", corpus, "--out", tmp_path / "o.jsonl"], capsys)
    assert status == 1 and "duplicate _id '5'" in err and "duplicate _id 'marie'" in err
    written = [json.loads(line)["_id"] for line in (tmp_path / "o.jsonl").read_text().splitlines()]
    assert written == ["marie", "bread", "rivers", "5"]
    results = lentil.search(index, "who discovered radium", top_k=10)
    assert len({r["corpus_id"] for r in results}) == len(results) == 4


def test_bad_bytes_and_lone_surrogates_cost_only_their_rows(tmp_path, capsys):
    corpus = tmp_path / "c.jsonl"
    lines = [
        json.dumps({"_id": "a", "text": "Fine text."}).encode(),
        b'{"_id": "b", "text": "caf\xe9"}',
        b'{"_id": "c", "text": "lone \\ud800 surrogate"}',
        b'{"_id": "\\udfff", "text": "id"}',
        b'{"_id": "e", "text": "x", "title": "\\ud83d"}',
        json.dumps({"_id": "f", "text": "Also fine."}).encode(),
    ]
    corpus.write_bytes(b"\n".join(lines) + b"\n")
    status, err = run(["score", "--query", "fine", corpus, "--out", tmp_path / "o.jsonl"], capsys)
    assert status == 1
    assert [json.loads(line)["_id"] for line in (tmp_path / "o.jsonl").read_text().splitlines()] == ["a", "f"]
    rejects = [json.loads(line) for line in (tmp_path / "o.jsonl.rejects.jsonl").read_text().splitlines()]
    assert [r["line"] for r in rejects] == [2, 3, 4, 5]
    assert "UTF-8" in rejects[0]["reason"] and all("surrogate" in r["reason"] for r in rejects[1:])


def test_stop_word_queries_still_get_dense_results(lentil, index_folder):
    for query in ("the of and", "it is what it is", "what is it?!"):
        results = lentil.search(index_folder, query, top_k=3)
        assert len(results) == 3 and all(0.0 <= r["score"] <= 1.0 for r in results)


@pytest.mark.parametrize("query", ["...", "?!", "\x00\x01\x1b", "\u2014 \u00b7 \u2026"])
def test_a_query_with_no_letter_or_digit_is_refused_everywhere(lentil, index_folder, tmp_path, capsys, query):
    with pytest.raises(ValueError, match="no letter or digit"):
        lentil.field(query, "...")
    with pytest.raises(ValueError, match="no letter or digit"):
        lentil.search(index_folder, query)
    (tmp_path / "a.txt").write_text("...")
    status, err = run(["score", "--query", query, tmp_path / "a.txt"], capsys)
    assert status == 2 and "no letter or digit" in err


def damaged_model(tmp_path, damage):
    folder = tmp_path / "model"
    shutil.copytree(DEFAULT_MODEL_DIR, folder)
    damage(folder)
    return folder


def _nan_weights(folder):
    state = load_file(folder / "model.safetensors")
    name = next(iter(state))
    state[name] = torch.full_like(state[name], float("nan"))
    save_file(state, folder / "model.safetensors")


def _config(**changes):
    def damage(folder):
        config = json.loads((folder / "config.json").read_text())
        (folder / "config.json").write_text(json.dumps({**config, **changes}))

    return damage


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda f: (f / "model.safetensors").write_bytes(b""), "not a readable safetensors file"),
        (
            lambda f: (f / "model.safetensors").write_bytes((f / "model.safetensors").read_bytes()[:5000]),
            "not a readable",
        ),
        (lambda f: (f / "model.safetensors").write_bytes(b"\x00" * 64), "not a readable safetensors file"),
        (_nan_weights, "NaN or infinite"),
        (_config(hidden_dim="144"), "'hidden_dim' must be an integer"),
        (_config(dropout="high"), "'dropout' must be a number"),
        (lambda f: (f / "config.json").write_text("[1, 2]"), "expected a JSON object"),
        (lambda f: (f / "config.json").write_bytes(b"\xff\xfe"), "not a JSON file"),
    ],
)
def test_a_damaged_model_is_one_line_and_status_2(tmp_path, capsys, damage, message):
    folder = damaged_model(tmp_path, damage)
    (tmp_path / "a.txt").write_text("Some text.")
    status, err = run(["score", "--query", "q", tmp_path / "a.txt", "--model", folder], capsys)
    assert status == 2 and message in err and str(folder) in err
    assert len(err.strip().splitlines()) == 1


def _manifest(change):
    def damage(folder):
        manifest = json.loads((folder / "manifest.json").read_text())
        change(manifest)
        (folder / "manifest.json").write_text(json.dumps(manifest))

    return damage


@pytest.mark.parametrize(
    "damage, message",
    [
        (_manifest(lambda m: m.pop("shards")), "'shards' must be a list"),
        (_manifest(lambda m: m.update(shards="shard-00000")), "'shards' must be a list"),
        (_manifest(lambda m: m["shards"][0].update(name="../../../etc")), "is not one this index writes"),
        (_manifest(lambda m: m["shards"][0].update(name="shard-00007")), "is missing"),
        (lambda f: (f / "shard-00000" / "tokens.npy").write_bytes(b""), "tokens.npy"),
        (lambda f: (f / "shard-00000" / "doc_slots.npy").write_bytes(b"\x93NUMPY garbage"), "doc_slots.npy"),
        (lambda f: np.save(f / "shard-00000" / "token_ids.npy", np.zeros(3, np.int32)), "token_ids.npy has shape"),
        (lambda f: (f / "shard-00000" / "docs.jsonl").write_text("{torn"), "docs.jsonl"),
        (lambda f: (f / "manifest.json").write_text("{torn"), "not a readable JSON manifest"),
        (lambda f: [p.write_bytes(b"") for p in (f / "bm25").iterdir()], "bm25"),
    ],
)
def test_a_damaged_index_is_one_line_and_status_2(index_folder, tmp_path, capsys, damage, message):
    folder = tmp_path / "index"
    shutil.copytree(index_folder, folder)
    damage(folder)
    status, err = run(["search", folder, "--query", "radium"], capsys)
    assert status == 2 and message in err, err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "content, message",
    [
        (b'{"score": 0.5}\n', "o.jsonl:1: the row has no string '_id'"),
        (b'{"_id": "a"}\n[1]\n', "o.jsonl:2: the row has no string '_id'"),
        (b'{"_id": "a"}\n{torn\n', "o.jsonl:2: not a JSON row"),
        (b'{"_id": "a"}\n"\xff"\n', "o.jsonl:2: not a JSON row"),
    ],
)
def test_resume_onto_a_foreign_output_names_the_file_and_line(tmp_path, capsys, content, message):
    (tmp_path / "a.txt").write_text("Some text.")
    (tmp_path / "o.jsonl").write_bytes(content)
    # The output claims to be this job's, so the rows themselves are read.
    (tmp_path / "o.jsonl.job.json").write_text(json.dumps({"query": "q", "pathways_per_query": 4, "model": None}))
    status, err = run(["score", "--query", "q", tmp_path / "a.txt", "--out", tmp_path / "o.jsonl", "--resume"], capsys)
    assert status == 2 and message in err, err


def test_count_arguments_refuse_bools_zero_and_other_types(lentil):
    docs = ["Rivers carry sediment."]
    for call in (
        lambda v: lentil.rank("q", docs, top_k=v),
        lambda v: lentil.fields("q", docs, batch_size=v),
        lambda v: lentil.compress("q", docs, budget_tokens=v),
        lambda v: lentil.fields("q", docs, pathways_per_query=v),
    ):
        for bad, error in (
            (True, TypeError),
            (False, TypeError),
            (0, ValueError),
            (-1, ValueError),
            (2.0, TypeError),
            ("3", TypeError),
        ):
            with pytest.raises(error):
                call(bad)


def test_search_batch_size_is_checked(lentil, index_folder):
    for bad in (0, True, -3):
        with pytest.raises((TypeError, ValueError), match="batch_size"):
            lentil.search(index_folder, "radium", batch_size=bad)


def test_lone_surrogates_name_the_argument(lentil):
    with pytest.raises(ValueError, match=r"^query holds a lone surrogate"):
        lentil.field("bad \ud800", "text")
    with pytest.raises(ValueError, match=r"^document holds a lone surrogate"):
        lentil.field("q", "bad \udc00 text")
    with pytest.raises(ValueError, match=r"^documents\[1\]\['text'\] holds"):
        lentil.fields("q", ["fine", {"text": "bad \ud800"}])
    with pytest.raises(ValueError, match=r"^documents\[0\]\['title'\] holds"):
        lentil.fields("q", [{"text": "fine", "title": "\udfff"}])


def test_k_per_call_leaves_the_default_and_other_threads_alone(lentil):
    docs = [f"Document {i} is about rivers and bread. It says {i} things about ovens." for i in range(12)]
    default = lentil.pathways_per_query
    expected = {k: [f.score for f in lentil.fields("rivers and ovens", docs, pathways_per_query=k)] for k in (1, 9)}
    assert expected[1] != expected[9]
    assert lentil.pathways_per_query == default
    results, failures = {1: [], 9: []}, []

    def worker(k):
        try:
            for _ in range(4):
                fields = lentil.fields("rivers and ovens", docs, pathways_per_query=k)
                results[k].append(([f.score for f in fields], {len(f.active) for f in fields}))
        except Exception as error:  # noqa: BLE001 - reported below with the thread's k
            failures.append((k, error))

    threads = [threading.Thread(target=worker, args=(k,)) for k in (1, 9, 1, 9)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures, failures
    for k in (1, 9):
        assert len(results[k]) == 8
        for scores, active in results[k]:
            assert active == {k}
            assert scores == pytest.approx(expected[k], abs=1e-5)
    assert lentil.pathways_per_query == default


def test_the_encoder_cache_survives_contention(lentil):
    encoder = lentil.encoder
    size, failures = encoder.cache_size, []
    encoder.cache_size = 4  # tiny, so every call evicts what other threads are reading
    try:

        def worker(n):
            try:
                for round_ in range(6):
                    texts = [f"sentence {(n + j + round_) % 10} of the shared pool" for j in range(6)]
                    encodings = encoder.encode(texts)
                    assert len(encodings) == len(texts)
            except Exception as error:  # noqa: BLE001
                failures.append(repr(error))

        threads = [threading.Thread(target=worker, args=(n,)) for n in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        encoder.cache_size = size
        encoder.clear_cache()
    assert not failures, failures


def test_resume_cuts_a_torn_rejects_line_and_names_a_foreign_one(tmp_path, capsys):
    corpus = tmp_path / "c.jsonl"
    corpus.write_text('{"_id": "a", "text": "Fine."}\n{oops\n', encoding="utf-8")
    out = tmp_path / "o.jsonl"
    rejects = tmp_path / "o.jsonl.rejects.jsonl"
    out.write_text("")
    rejects.write_text('{"source": "x", "line": 3, "reason": "r"}\n{"source": "x", "li')  # a killed run's torn line
    status, _ = run(["score", "--query", "q", corpus, "--out", out, "--resume"], capsys)
    assert status == 1
    assert [json.loads(line)["line"] for line in rejects.read_text().splitlines()] == [3, 2]
    rejects.write_text('{"source": "x"}\n')
    status, err = run(["score", "--query", "q", corpus, "--out", out, "--resume"], capsys)
    assert status == 2 and "o.jsonl.rejects.jsonl:1: not a rejects row" in err


def test_output_rows_stay_one_per_line_for_any_line_splitter(tmp_path, capsys):
    """Found by the fuzz suite: U+0085, U+2028 and U+2029 are line breaks to str.splitlines, not to JSON."""
    corpus = tmp_path / "c.jsonl"
    write_jsonl(corpus, [{"_id": "a", "text": "One\x85two\u2028three\u2029four."}, {"_id": "b", "text": "Plain."}])
    status, _ = run(["score", "--query", "q", corpus, "--out", tmp_path / "o.jsonl"], capsys)
    assert status == 0
    rows = [json.loads(line) for line in (tmp_path / "o.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [r["_id"] for r in rows] == ["a", "b"]
    assert "\x85" in rows[0]["slots"][0]["text"]  # written as is, escaped


def test_index_resume_over_a_damaged_manifest_rebuilds_and_bad_shard_sizes_are_refused(index_folder, tmp_path, capsys):
    folder = tmp_path / "index"
    shutil.copytree(index_folder, folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest.pop("shards")
    manifest["complete"] = False
    (folder / "manifest.json").write_text(json.dumps(manifest))
    corpus = index_folder.parent / "corpus.jsonl"
    status, _ = run(["index", corpus, "--output", folder, "--resume"], capsys)
    assert status == 1  # the two duplicate rows again; the index itself is whole
    assert CorpusIndex.load(folder).doc_ids == ["marie", "bread", "rivers", "5"]
    for bad in ("0", "-2", "x"):  # refused by the parser, before any work
        with pytest.raises(SystemExit) as refused:
            main(["index", str(corpus), "--output", str(tmp_path / f"other{bad}"), "--shard-size", bad])
        err = capsys.readouterr().err
        assert refused.value.code == 2 and "--shard-size: expected a positive integer" in err
        assert "Traceback" not in err and not (tmp_path / f"other{bad}").exists()


def test_a_searched_folder_is_opened_once_until_its_manifest_changes(lentil, index_folder, tmp_path, monkeypatch):
    folder = tmp_path / "index"
    shutil.copytree(index_folder, folder)
    opened = []
    load = CorpusIndex.load.__func__
    monkeypatch.setattr(
        CorpusIndex, "load", classmethod(lambda cls, *a, **k: opened.append(a[0]) or load(cls, *a, **k))
    )
    first = lentil.search(folder, "radium", top_k=3)
    assert [r["corpus_id"] for r in lentil.search(folder, "radium", top_k=3)] == [r["corpus_id"] for r in first]
    assert len(opened) == 1
    manifest = json.loads((folder / "manifest.json").read_text())
    (folder / "manifest.json").write_text(json.dumps({**manifest, "encoder": "another-encoder"}))
    with pytest.raises(StaleIndexError):  # the manifest decides: a changed one is read again, and refused
        lentil.search(folder, "radium", top_k=3)
    assert len(opened) == 2
