"""`score --out` in real processes: never an input, an existing output only on request, one writer,
and a Parquet commit that a kill cannot make join twice."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from tests.processes import CLI

ROOT = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}


def write_corpus(path: Path, n: int) -> list[str]:
    ids = [f"doc{i}" for i in range(n)]
    rows = [{"_id": i, "text": f"{i} is about rivers. It has a second sentence, number {i}."} for i in ids]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return ids


def score(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*CLI, "score", "--query", "rivers", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=ENV,
        cwd=ROOT,
    )


def jsonl_ids(path: Path) -> list[str]:
    return [json.loads(line)["_id"] for line in path.read_text(encoding="utf-8").splitlines()]


def test_an_output_that_is_an_input_is_refused_and_the_input_kept(tmp_path):
    corpus = tmp_path / "in.jsonl"
    write_corpus(corpus, 3)
    before = corpus.read_bytes()
    (tmp_path / "link.jsonl").symlink_to(corpus)
    os.link(corpus, tmp_path / "hard.jsonl")
    other = tmp_path / "o.jsonl.rejects.jsonl"  # the rejects file of --out o.jsonl
    other.write_bytes(before)
    cases = [([corpus], corpus, extra) for extra in ([], ["--resume"], ["--overwrite"], ["--format", "parquet"])]
    cases += [
        ([corpus], tmp_path / "link.jsonl", []),
        ([tmp_path / "hard.jsonl"], corpus, []),
        ([other], tmp_path / "o.jsonl", []),
    ]
    for inputs, out, extra in cases:
        result = score(*inputs, "--out", out, *extra, timeout=120)
        assert result.returncode == 2, (inputs, out, extra, result.stderr)
        assert "would overwrite the input" in result.stderr and "Traceback" not in result.stderr
    assert corpus.read_bytes() == before and other.read_bytes() == before


@pytest.mark.parametrize("output_format", ["jsonl", "parquet"])
def test_an_existing_output_is_refused_unless_resumed_or_overwritten(tmp_path, output_format):
    corpus = tmp_path / "in.jsonl"
    ids = write_corpus(corpus, 5)
    out = tmp_path / f"out.{output_format}"
    out.write_bytes(b"an earlier run's output")
    refused = score(corpus, "--out", out, "--format", output_format, timeout=120)
    assert refused.returncode == 2 and "exists already" in refused.stderr, refused.stderr
    assert out.read_bytes() == b"an earlier run's output"
    both = score(corpus, "--out", out, "--format", output_format, "--resume", "--overwrite", timeout=120)
    assert both.returncode == 2 and "contradict" in both.stderr

    first = score(corpus, "--out", out, "--format", output_format, "--overwrite")
    assert first.returncode == 0, first.stderr
    second = score(corpus, "--out", out, "--format", output_format, "--overwrite")
    assert second.returncode == 0, second.stderr
    written = pq.read_table(out)["_id"].to_pylist() if output_format == "parquet" else jsonl_ids(out)
    assert sorted(written) == sorted(ids)  # replaced, never appended to


@pytest.mark.slow
def test_a_second_writer_is_refused_while_the_first_finishes_whole(tmp_path):
    corpus = tmp_path / "in.jsonl"
    ids = write_corpus(corpus, 3000)
    out = tmp_path / "out.jsonl"
    command = [*CLI, "score", "--query", "rivers", str(corpus), "--out", str(out), "--batch-size", "2"]
    first = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=ENV, cwd=ROOT)
    try:
        deadline = time.monotonic() + 300
        while not (out.is_file() and out.read_bytes().count(b"\n") >= 2):
            assert first.poll() is None, first.stderr.read()
            assert time.monotonic() < deadline, "the first writer wrote nothing in 300 s"
            time.sleep(0.05)
        for extra in ([], ["--resume"], ["--overwrite"]):
            second = subprocess.run(command + extra, capture_output=True, text=True, timeout=120, env=ENV, cwd=ROOT)
            assert second.returncode == 2, second.stderr
            assert "being written by another process" in second.stderr
        assert first.poll() is None, "the first writer ended before the second was tried; make the corpus larger"
    finally:
        first.wait(timeout=600)
    assert first.returncode == 0
    assert sorted(jsonl_ids(out)) == sorted(ids)


KILL_IN_COMMIT = """
import os, signal, sys
from pathlib import Path
import spicy_lentil.frontends.sinks as sinks
where = sys.argv.pop(1)
real_replace, real_unlink = os.replace, Path.unlink
def replace(src, dst, *a, **k):
    if where == "before-join" and str(dst).endswith("out.parquet"):
        os.kill(os.getpid(), signal.SIGKILL)
    return real_replace(src, dst, *a, **k)
def unlink(self, *a, **k):
    if where == "after-join" and self.name.startswith("part-"):
        os.kill(os.getpid(), signal.SIGKILL)
    return real_unlink(self, *a, **k)
sinks.os.replace, Path.unlink = replace, unlink
from spicy_lentil.frontends.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.slow
@pytest.mark.parametrize("where", ["before-join", "after-join"])
def test_parquet_killed_inside_the_commit_resumes_with_every_id_once(tmp_path, where):
    corpus = tmp_path / "in.jsonl"
    ids = write_corpus(corpus, 12)
    out = tmp_path / "out.parquet"
    args = ["score", "--query", "rivers", str(corpus), "--out", str(out), "--format", "parquet"]
    killed = subprocess.run(
        [sys.executable, "-c", KILL_IN_COMMIT, where, *args],
        capture_output=True,
        text=True,
        timeout=600,
        env=ENV,
        cwd=ROOT,
    )
    assert killed.returncode == -9, killed.stderr
    assert (out.is_file()) == (where == "after-join") and list((tmp_path / "out.parquet.parts").glob("part-*"))
    resumed = score(corpus, "--out", out, "--format", "parquet", "--resume")
    assert resumed.returncode == 0, resumed.stderr
    written = pq.read_table(out)["_id"].to_pylist()
    assert sorted(written) == sorted(ids)
    assert not (tmp_path / "out.parquet.parts").exists()
