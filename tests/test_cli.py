import json
import re
import subprocess
import sys
import warnings

import pytest

from spicy_lentil.frontends.cli import main


def test_help_lists_every_command(capsys):
    with pytest.raises(SystemExit) as exit:
        main(["--help"])
    assert exit.value.code == 0
    listed = re.findall(r"^    ([a-z]+)\b", capsys.readouterr().out, flags=re.M)  # one line each, under COMMAND
    assert sorted(listed) == ["app", "eval", "index", "score", "search", "serve", "train"]
    for command in listed:  # each listed name is a command, with its own usage
        with pytest.raises(SystemExit) as exit:
            main([command, "--help"])
        assert exit.value.code == 0
        assert capsys.readouterr().out.startswith(f"usage: spicy-lentil {command} "), command


def test_score_txt_and_jsonl_with_rejects(tmp_path, capsys):
    txt = tmp_path / "a.txt"
    txt.write_text("Bones need vitamin D. Sunlight makes it.", encoding="utf-8")
    rows = tmp_path / "rows.jsonl"
    rows.write_text(
        "\n".join(
            [
                json.dumps({"_id": "d1", "text": "Calcium builds bone."}),
                "{not json",
                json.dumps({"_id": "d2"}),
                json.dumps(["a", "list"]),
                json.dumps({"_id": "d3", "text": ""}),
            ]
        )
        + "\n",
        encoding="utf-8",
    )
    out = tmp_path / "out.jsonl"
    status = main(["score", "--query", "vitamin D and bones", str(txt), str(rows), "--out", str(out)])
    assert status == 1  # rows were rejected
    results = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["_id"] for r in results] == [str(txt), "d1", "d3"]
    assert results[2]["score"] == 0.0 and results[2]["slots"] == []
    first = results[0]
    text = txt.read_text()
    for slot in first["slots"]:
        assert text[slot["start"] : slot["end"]] == slot["text"]
    assert len(first["active"]) == 4
    rejects = [json.loads(line) for line in (tmp_path / "out.jsonl.rejects.jsonl").read_text().splitlines()]
    assert [r["line"] for r in rejects] == [2, 3, 4]
    assert "invalid JSON" in rejects[0]["reason"] and "text" in rejects[1]["reason"]
    assert "rejected 3" in capsys.readouterr().err


def test_score_stdin_clean_exit():
    rows = json.dumps({"_id": "s1", "text": "Vitamin D and bones."}) + "\n"
    proc = subprocess.run(
        [sys.executable, "-m", "spicy_lentil", "score", "--query", "bones", "-"],
        input=rows,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["_id"] == "s1"


@pytest.mark.parametrize(
    "argv, message",
    [
        (["score", "--query", "  ", "x.txt"], "query"),
        (["score", "--query", "q", "x.txt", "--model", "/nonexistent"], "not a Spicy Lentil model folder"),
    ],
)
def test_bad_input_is_an_error_line_not_a_traceback(argv, message, capsys, tmp_path):
    (tmp_path / "x.txt").write_text("text")
    argv = [a if a != "x.txt" else str(tmp_path / "x.txt") for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_missing_file_is_rejected_not_fatal(tmp_path):
    out = tmp_path / "o.jsonl"
    good = tmp_path / "g.txt"
    good.write_text("Some text here.")
    assert main(["score", "--query", "q", str(tmp_path / "missing.txt"), str(good), "--out", str(out)]) == 1
    assert len(out.read_text().splitlines()) == 1


def test_rows_are_read_by_a_case_insensitive_extension_and_an_unknown_one_is_refused(tmp_path, capsys):
    row = json.dumps({"_id": "r1", "text": "Calcium builds bone."}) + "\n"
    (tmp_path / "rows.ndjson").write_text(row)
    (tmp_path / "ROWS.JSONL").write_text(row.replace("r1", "r2"))
    (tmp_path / "notes.MD").write_text("Bones need vitamin D.")
    (tmp_path / "table.csv").write_text("_id,text\nr3,Calcium.\n")
    out = tmp_path / "out.jsonl"
    paths = [str(tmp_path / name) for name in ("rows.ndjson", "ROWS.JSONL", "notes.MD", "table.csv")]
    assert main(["score", "--query", "bones", *paths, "--out", str(out)]) == 1
    assert [json.loads(line)["_id"] for line in out.read_text().splitlines()] == ["r1", "r2", paths[2]]
    (reject,) = [json.loads(line) for line in (tmp_path / "out.jsonl.rejects.jsonl").read_text().splitlines()]
    assert reject["source"] == paths[3] and "unknown file type '.csv'" in reject["reason"]


@pytest.mark.parametrize("rows", ["", "{oops\n" + json.dumps({"_id": "no-text"}) + "\n"])
def test_index_of_no_documents_says_so_and_leaves_no_index(tmp_path, capsys, rows):
    corpus, folder = tmp_path / "corpus.jsonl", tmp_path / "index"
    corpus.write_text(rows)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # numpy's warning over an empty corpus came before the traceback
        assert main(["index", str(corpus), "--output", str(folder)]) == 2
    err = capsys.readouterr().err
    assert "no documents to index" in err and "Traceback" not in err
    assert not (folder / "manifest.json").exists()
    assert main(["search", str(folder), "--query", "anything"]) == 2
    err = capsys.readouterr().err
    assert "--resume" not in err and str(folder) in err


def test_a_json_reject_reason_is_whole(tmp_path):
    rows = tmp_path / "rows.jsonl"
    rows.write_bytes(b'{"_id": "a", "text": "tab\there"}\n{"_id": "b", "text": "fine"}\n')
    assert main(["score", "--query", "q", str(rows), "--out", str(tmp_path / "o.jsonl")]) == 1
    (reject,) = [json.loads(line) for line in (tmp_path / "o.jsonl.rejects.jsonl").read_text().splitlines()]
    assert reject["reason"] == "invalid JSON at position 25: Invalid control character"


def test_the_same_file_twice_is_scored_once(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "notes.txt").write_text("Bones need vitamin D.")
    assert main(["score", "--query", "bones", "notes.txt", "./notes.txt", "--out", "o.jsonl"]) == 1
    assert [json.loads(line)["_id"] for line in (tmp_path / "o.jsonl").read_text().splitlines()] == ["notes.txt"]
    (reject,) = [json.loads(line) for line in (tmp_path / "o.jsonl.rejects.jsonl").read_text().splitlines()]
    assert reject["source"] == "./notes.txt" and "the same file as notes.txt" in reject["reason"]


def test_the_progress_bar_counts_documents_and_reject_messages_have_their_own_lines(tmp_path):
    rows = tmp_path / "rows.jsonl"
    good = [json.dumps({"_id": f"d{i}", "text": f"Document {i} is about rivers."}) for i in range(4)]
    rows.write_text("\n".join([good[0], "{oops", *good[1:3], "[1]", good[3], "{x"]) + "\n")
    proc = subprocess.run(
        [sys.executable, "-m", "spicy_lentil", "score", "--query", "rivers", str(rows)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 1
    for line in proc.stderr.split("\n"):
        if f"rejected {rows}" in line:  # what the terminal line ends up showing, after the bar's last return
            assert line.split("\r")[-1].startswith("rejected "), line
    counts = re.findall(r"\| (\d+)/(\d+) \[", proc.stderr)
    assert counts[-1] == ("4", "4")
