"""The `spicy-lentil` command line: a thin front end over the public API."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Iterator

from .errors import SpicyLentilError

APP_SCRIPT = Path(__file__).resolve().parent.parent / "app" / "streamlit_app.py"


class Rejects:
    """Collects malformed input rows, written beside the output as `<out>.rejects.jsonl`."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.count = 0
        self._file = None

    def add(self, source: str, line: int, reason: str) -> None:
        self.count += 1
        print(f"rejected {source}:{line}: {reason}", file=sys.stderr)
        if self.path is not None:
            if self._file is None:
                self._file = self.path.open("a", encoding="utf-8")
            self._file.write(json.dumps({"source": source, "line": line, "reason": reason}) + "\n")
            self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()


def read_documents(paths: list[str], rejects: Rejects) -> Iterator[dict]:
    """Yields {"_id", "text"} documents from .txt files, JSONL files or stdin ("-"), one at a time."""
    for path in paths:
        if path != "-" and not path.endswith((".jsonl", ".json")):
            try:
                text = Path(path).read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as error:
                rejects.add(path, 0, f"cannot read file: {error}")
                continue
            yield {"_id": path, "text": text}
            continue
        try:
            handle = sys.stdin if path == "-" else open(path, encoding="utf-8")
        except OSError as error:
            rejects.add(path, 0, f"cannot open file: {error}")
            continue
        source = "<stdin>" if path == "-" else path
        with handle if path != "-" else _nullcontext(handle):
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as error:
                    rejects.add(source, number, f"invalid JSON: {error.msg}")
                    continue
                if not isinstance(row, dict):
                    rejects.add(source, number, f"expected a JSON object, got {type(row).__name__}")
                elif not isinstance(row.get("text"), str):
                    rejects.add(source, number, "missing string field 'text'")
                elif "_id" not in row:
                    rejects.add(source, number, "missing field '_id'")
                else:
                    yield {"_id": str(row["_id"]), "title": row.get("title") if isinstance(row.get("title"), str) else None,
                           "text": row["text"]}


class _nullcontext:
    def __init__(self, value) -> None:
        self.value = value

    def __enter__(self):
        return self.value

    def __exit__(self, *exc) -> None:
        return None


def cmd_score(args: argparse.Namespace) -> int:
    from .engine import SpicyLentil

    out_path = Path(args.out) if args.out else None
    rejects = Rejects(out_path.with_name(out_path.name + ".rejects.jsonl") if out_path else None)
    lentil = SpicyLentil.from_pretrained(args.model)
    lentil.pathways_per_query = args.pathways_per_query
    out = out_path.open("w", encoding="utf-8") if out_path else sys.stdout
    written = 0
    try:
        for result in lentil.iter_fields(args.query, read_documents(args.files, rejects), batch_size=args.batch_size):
            row = {"_id": result.document_id, "score": result.score, "active": result.active, "truncated": result.truncated,
                   "slots": [s.to_dict() for s in result.slots]}
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
            written += 1
    finally:
        if out_path:
            out.close()
        rejects.close()
    print(f"scored {written} document(s), rejected {rejects.count} row(s)", file=sys.stderr)
    return 1 if rejects.count else 0


def cmd_app(args: argparse.Namespace) -> int:
    env = dict(os.environ)
    if args.model:
        env["SPICY_LENTIL_MODEL"] = str(Path(args.model).resolve())
    command = [sys.executable, "-m", "streamlit", "run", str(APP_SCRIPT), "--server.port", str(args.port),
               "--server.headless", "true", "--browser.gatherUsageStats", "false"]
    return subprocess.call(command, env=env)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="spicy-lentil", description="Relevance fields: which parts of these texts matter for this query, and why.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    score = commands.add_parser("score", help="score documents (.txt files, JSONL rows {\"_id\",\"text\"}, or - for stdin)")
    score.add_argument("--query", required=True, help="the query text")
    score.add_argument("files", nargs="+", metavar="FILE", help=".txt or .jsonl files, or - for JSONL on stdin")
    score.add_argument("--model", default=None, help="model folder (default: the bundled model)")
    score.add_argument("--out", default=None, help="output JSONL (default: stdout); rejects go to OUT.rejects.jsonl")
    score.add_argument("--batch-size", type=int, default=32)
    score.add_argument("--pathways-per-query", type=int, default=4, help="the gate's top-k, 1..9")
    score.set_defaults(handler=cmd_score)

    app = commands.add_parser("app", help="open the Streamlit app on the demo corpus")
    app.add_argument("--model", default=None, help="model folder (default: the bundled model)")
    app.add_argument("--port", type=int, default=8501)
    app.set_defaults(handler=cmd_app)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.handler(args)
    except (SpicyLentilError, ValueError, TypeError, OSError) as error:
        print(f"spicy-lentil {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
