import json
import subprocess

import pyarrow.parquet as pq

from spicy_lentil.frontends.cli import main
from spicy_lentil.frontends.sinks import JsonlSink
from tests.processes import CLI, kill_after_rows

BAD_LINES = {7: "{oops", 19: json.dumps({"_id": "no-text"}), 150: "[1, 2]"}


def write_corpus(path, n=240):
    lines = []
    for i in range(1, n + 1):
        if i in BAD_LINES:
            lines.append(BAD_LINES[i])
        else:
            lines.append(
                json.dumps({"_id": f"doc{i}", "text": f"Document {i} talks about topic {i % 7}. It has two sentences."})
            )
    path.write_text("\n".join(lines) + "\n")
    return {f"doc{i}" for i in range(1, n + 1) if i not in BAD_LINES}


def test_killed_job_resumes_with_every_id_exactly_once(tmp_path):
    corpus = tmp_path / "corpus.jsonl"
    expected = write_corpus(corpus)
    out = tmp_path / "out.jsonl"
    command = [*CLI, "score", "--query", "topic 3", str(corpus), "--out", str(out), "--batch-size", "4"]
    kill_and_resume(command, out, expected)


def kill_and_resume(command: list[str], out, expected: set[str], env: dict | None = None) -> None:
    """Kills a score job of `write_corpus`'s corpus midway, resumes it, and checks every id was written once."""
    partial = kill_after_rows(command, out, env=env)
    assert 20 <= len(partial) < len(expected)
    resumed = subprocess.run(command + ["--resume"], capture_output=True, text=True, timeout=600, env=env)
    assert resumed.returncode == 1, resumed.stderr  # rows were rejected
    ids = [json.loads(line)["_id"] for line in out.read_text().splitlines()]
    assert len(ids) == len(set(ids)) == len(expected)
    assert set(ids) == expected
    rejects = [json.loads(line) for line in out.with_name(out.name + ".rejects.jsonl").read_text().splitlines()]
    assert sorted(r["line"] for r in rejects) == sorted(BAD_LINES)
    assert "rejected 3 row(s)" in resumed.stderr and "already done" in resumed.stderr


def test_parquet_output_and_resume(tmp_path):
    corpus = tmp_path / "corpus.jsonl"
    expected = write_corpus(corpus, n=30)
    out = tmp_path / "out.parquet"
    assert main(["score", "--query", "topic", str(corpus), "--out", str(out), "--format", "parquet"]) == 1
    table = pq.read_table(out)
    assert set(table["_id"].to_pylist()) == expected
    slots = json.loads(table["slots"][0].as_py())
    assert slots and {"text", "start", "end", "score"} <= set(slots[0])
    assert main(["score", "--query", "topic", str(corpus), "--out", str(out), "--format", "parquet", "--resume"]) == 1
    assert sorted(pq.read_table(out)["_id"].to_pylist()) == sorted(expected)


def test_resume_refuses_another_jobs_output(tmp_path, capsys):
    corpus = tmp_path / "corpus.jsonl"
    write_corpus(corpus, n=6)
    out = tmp_path / "out.jsonl"
    job = ["score", str(corpus), "--out", str(out)]
    assert main([*job, "--query", "topic 3"]) == 0
    written = out.read_bytes()
    for changed in (["--query", "topic 4"], ["--query", "topic 3", "--pathways-per-query", "2"]):
        capsys.readouterr()
        assert main([*job, *changed, "--resume"]) == 2
        err = capsys.readouterr().err
        assert "another job's rows" in err and "Traceback" not in err
        assert out.read_bytes() == written
    assert main([*job, "--query", "topic 3", "--resume"]) == 0  # the same job continues
    assert out.read_bytes() == written
    assert main([*job, "--query", "topic 4", "--overwrite"]) == 0
    assert main([*job, "--query", "topic 4", "--resume"]) == 0


def test_torn_last_line_is_cut_on_resume(tmp_path):
    path = tmp_path / "o.jsonl"
    path.write_text('{"_id": "a"}\n{"_id": "b"}\n{"_id": "c", "sco')
    sink = JsonlSink(path, resume=True)
    sink.close()
    assert sink.done == {"a", "b"}  # the torn row is not counted as written: it will be scored again
    assert path.read_text() == '{"_id": "a"}\n{"_id": "b"}\n'
    JsonlSink(path, resume=True).close()  # a whole last line is kept
    assert path.read_text() == '{"_id": "a"}\n{"_id": "b"}\n'
    path.write_text('{"_id": "a", "sco')
    JsonlSink(path, resume=True).close()  # the only line, torn
    assert path.read_text() == ""


def test_score_job_leaves_the_slot_cache_alone(tmp_path, lentil):
    """A one-pass job over distinct documents leaves the encoder's cache alone (else memory grows with the input)."""
    from spicy_lentil.frontends.jobs import score_job
    from spicy_lentil.io import Rejects

    lentil.encoder.clear_cache()
    documents = [
        {"_id": f"d{i}", "text": f"Document {i} is about rivers. Its second sentence is number {i}."} for i in range(5)
    ]
    summary = score_job(
        lentil, "rivers", documents, tmp_path / "out.jsonl", Rejects(echo=False), show_progress_bar=False
    )
    assert summary["scored"] == 5
    assert lentil.encoder.cached_texts == 1  # the query only
    lentil.fields("rivers", [documents[0]["text"]])
    assert lentil.encoder.cached_texts == 3  # interactive scoring still caches slots for the next query
