"""The compressed corpus index: token vectors as faiss codes, embeddings as float16, and the format's guards."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from spicy_lentil.corpus.builder import build_index, stored_encodings
from spicy_lentil.corpus.index import CorpusIndex, StaleIndexError
from spicy_lentil.corpus.token_codec import POINTS_PER_CENTROID, PQ_CENTROIDS, CodecSpec, TokenCodec
from spicy_lentil.errors import DamagedFileError
from tests.reference_outputs import REPO

SCIFACT = REPO.parent / "shared" / "data" / "scifact" / "corpus.jsonl"
DOCUMENTS = 60  # the first shard of 40 holds about 13,000 tokens, enough to train a codec


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    if not SCIFACT.exists():
        pytest.skip("needs ../shared/data/scifact")
    path = tmp_path_factory.mktemp("corpus") / "corpus.jsonl"
    with open(SCIFACT, encoding="utf-8") as handle:
        path.write_text("".join(next(handle) for _ in range(DOCUMENTS)), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def exact(corpus, lentil, tmp_path_factory):
    folder = tmp_path_factory.mktemp("exact")
    return build_index(
        corpus, folder, lentil.encoder, lentil.slotter, shard_size=40, token_codec=None, show_progress_bar=False
    )


@pytest.fixture(scope="module")
def compact(corpus, exact, lentil, tmp_path_factory):
    folder = tmp_path_factory.mktemp("compact")
    return build_index(
        corpus,
        folder,
        lentil.encoder,
        lentil.slotter,
        shard_size=40,
        encode_shards=stored_encodings(exact),
        show_progress_bar=False,
    )


def size(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())


def test_a_compact_index_stores_codes_and_half_precision_in_a_fraction_of_the_bytes(exact, compact):
    assert compact.manifest["compressed"] is True and exact.manifest["compressed"] is False
    shard = compact.folder / "shard-00000"
    assert not (shard / "tokens.npy").exists()
    codes = np.load(shard / "token_codes.npy")
    assert codes.dtype == np.uint8 and codes.shape[1] <= 34  # centroid id (1-2 bytes) + 32 bytes of residual
    assert np.load(shard / "slot_embeddings.npy").dtype == np.float16
    assert np.load(shard / "token_ids.npy").dtype == np.int16
    assert np.load(exact.folder / "shard-00000" / "slot_embeddings.npy").dtype == np.float32
    # The codec (about 2 MB of centroids) is paid once per index; the shards themselves shrink tenfold.
    codec = (compact.folder / "token_codec.npy").stat().st_size
    assert (size(compact.folder) - codec) * 8 < size(exact.folder)


def test_decoded_tokens_keep_their_direction_and_the_rest_is_exact(exact, compact):
    positions = list(range(len(exact)))
    a, b = exact.document_batch(positions), compact.document_batch(positions)
    for name in ("slot_counts", "token_counts", "token_ids", "token_slot"):
        assert torch.equal(getattr(a, name), getattr(b, name)), name
    assert b.tokens.dtype == torch.float16 and b.tokens.shape == a.tokens.shape
    cosine = torch.nn.functional.cosine_similarity(a.tokens.float(), b.tokens.float(), dim=-1)
    assert cosine.mean() > 0.78  # residual PQ at 33 bytes (0.82 when written); float16 of the vectors gives 1.0
    assert torch.allclose(a.slots, b.slots, atol=2e-3)  # float16 rounding only
    assert compact.document(5) == exact.document(5) and compact.slots(5) == exact.slots(5)


def test_compact_search_ranks_as_the_exact_index(exact, compact, lentil):
    for query in ("What does the immune system do against tumours?", "Which genes control cell division?"):
        ours = lentil.search(compact, query, top_k=5)
        theirs = lentil.search(exact, query, top_k=5)
        assert [r["corpus_id"] for r in ours[:3]] == [r["corpus_id"] for r in theirs[:3]]
        assert np.allclose([r["score"] for r in ours], [r["score"] for r in theirs], atol=0.05)


def test_shards_arriving_out_of_order_get_the_codec_of_the_first(corpus, exact, compact, lentil, tmp_path):
    encode = stored_encodings(exact)

    def backwards(shards):
        yield from reversed(list(encode(shards)))

    folder = tmp_path / "backwards"
    build_index(
        corpus,
        folder,
        lentil.encoder,
        lentil.slotter,
        shard_size=40,
        encode_shards=backwards,
        show_progress_bar=False,
    )
    assert (folder / "token_codec.npy").read_bytes() == (compact.folder / "token_codec.npy").read_bytes()
    for shard in ("shard-00000", "shard-00001"):
        assert np.array_equal(
            np.load(folder / shard / "token_codes.npy"), np.load(compact.folder / shard / "token_codes.npy")
        )


def test_too_few_tokens_to_train_a_codec_leave_the_index_exact(lentil, tmp_path):
    tokens = np.random.default_rng(0).normal(size=(POINTS_PER_CENTROID * PQ_CENTROIDS - 1, 384)).astype(np.float32)
    assert TokenCodec.train(tokens, CodecSpec()) is None
    corpus = tmp_path / "c.jsonl"
    corpus.write_text(json.dumps({"_id": "a", "text": "Rivers carry sediment. Deltas form at the mouth."}) + "\n")
    index = build_index(corpus, tmp_path / "index", lentil.encoder, lentil.slotter, show_progress_bar=False)
    assert index.manifest["compressed"] is False and (tmp_path / "index" / "shard-00000" / "tokens.npy").exists()
    with pytest.raises(ValueError, match="must divide"):
        TokenCodec.train(tokens, CodecSpec(code_bytes=7))


def test_the_command_line_chooses_exact_or_compact_and_refuses_a_codec_that_cannot_fit(tmp_path, capsys):
    from spicy_lentil.frontends.cli import main

    corpus = tmp_path / "c.jsonl"
    corpus.write_text(json.dumps({"_id": "a", "text": "Rivers carry sediment. Deltas form at the mouth."}) + "\n")
    assert main(["index", str(corpus), "--output", str(tmp_path / "exact"), "--exact"]) == 0
    assert json.loads((tmp_path / "exact" / "manifest.json").read_text())["token_codec"] is None
    capsys.readouterr()
    assert main(["index", str(corpus), "--output", str(tmp_path / "odd"), "--code-bytes", "7"]) == 2
    err = capsys.readouterr().err
    assert "code_bytes=7 must divide the embedding dimension 384" in err and "Traceback" not in err
    assert not (tmp_path / "odd" / "manifest.json").exists()  # refused before anything was encoded


def test_an_index_of_another_format_is_refused_with_the_command_that_rebuilds_it(exact, tmp_path):
    folder = tmp_path / "old"
    shutil.copytree(exact.folder, folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["format"] = 2
    (folder / "manifest.json").write_text(json.dumps(manifest))
    rebuild = r"index format 2, this version reads 3; rebuild it with `spicy-lentil index .+ --output "
    with pytest.raises(StaleIndexError, match=rebuild):
        CorpusIndex.load(folder)


def narrower(path: Path) -> np.ndarray:
    return np.load(path)[:, :7]


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda f: (f / "token_codec.npy").write_bytes(b"\x93NUMPY torn"), "token_codec.npy"),
        (lambda f: (f / "token_codec.npy").unlink(), "token_codec.npy"),
        (
            lambda f: np.save(f / "shard-00001" / "slot_embeddings.npy", np.zeros((3, 384), np.float32)),
            "slot_embeddings.npy holds float32, expected float16",
        ),
        (
            lambda f: np.save(f / "shard-00000" / "token_codes.npy", narrower(f / "shard-00000" / "token_codes.npy")),
            r"token_codes.npy rows are \(7,\)",
        ),
        (
            lambda f: (f / "manifest.json").write_text(
                json.dumps({**json.loads((f / "manifest.json").read_text()), "compressed": "yes"})
            ),
            "'compressed' must be true or false",
        ),
    ],
)
def test_a_damaged_compact_index_is_refused_never_misread(compact, tmp_path, damage, message):
    folder = tmp_path / "index"
    shutil.copytree(compact.folder, folder)
    damage(folder)
    with pytest.raises(DamagedFileError, match=message):
        CorpusIndex.load(folder)


def test_the_approximate_first_stage_is_exact_when_its_pool_holds_the_corpus(compact, lentil):
    from spicy_lentil.corpus.first_stage import FirstStage

    query = "Which genes control cell division?"
    embedding = lentil.encode_query(query).embedding.numpy()
    exact = FirstStage().retrieve(compact, query, embedding, 20)
    pooled = FirstStage(approximate_from=1, pool=len(compact), sample=4).retrieve(compact, query, embedding, 20)
    assert np.array_equal(exact.docs, pooled.docs)
    assert np.allclose(exact.prior, pooled.prior, atol=1e-5)


def test_the_approximate_first_stage_ranks_only_what_it_scored(compact, lentil):
    from spicy_lentil.corpus.first_stage import FirstStage

    query = "What does the immune system do against tumours?"
    embedding = lentil.encode_query(query).embedding.numpy()
    stage = FirstStage(approximate_from=1, pool=8, sample=5)
    signals = stage.signals(compact, query, embedding)
    scored = np.flatnonzero(~np.isnan(signals["dense_slot"]))
    assert 8 <= len(scored) <= 13 and np.isinf(np.delete(signals["fusion"], scored)).all()
    found = stage.retrieve(compact, query, embedding, 100)
    assert sorted(found.docs.tolist()) == scored.tolist() and not np.isnan(found.prior).any()
    # The pool holds the documents best by BM25 and document cosine, so the exact top 3 are in it.
    assert set(FirstStage().retrieve(compact, query, embedding, 3).docs) <= set(found.docs)
