"""Shared helpers of the benchmark scripts: paths, the machine, results files, and markdown from templates.

Every script runs from the repo root as `python -m benchmarks.NAME`: `main()` measures with `benchmarks.harness` and
`publish`es its figures to `benchmarks/results/<section>.json` (with the date, machine and command of the run); the
pure `render(result)` computes the section's tables and `fill`s `benchmarks/templates/<section>.md` with them and the
stored figures. `render` formats, selects, counts and compares with targets, but derives no measured figure from
others (the results back-filled from an earlier BENCHMARKS.md hold the published, rounded numbers). Scripts import only
the standard library at module level, so rendering needs neither torch nor the extras.
"""

from __future__ import annotations

import datetime as _dt
import itertools
import json
import os
import platform
import re
import shlex
import sys
import time
from pathlib import Path
from typing import Sequence

REPO_ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = REPO_ROOT / "benchmarks" / "results"
TEMPLATES = REPO_ROOT / "benchmarks" / "templates"
SHARED_DATA = (REPO_ROOT / ".." / "shared" / "data").resolve()
SCIFACT_DIR = SHARED_DATA / "scifact"
CACHE_DIR = REPO_ROOT / "cache"  # git-ignored
DOMAINS = ("scifact", "wikiqa", "selqa")  # the datasets with sentence labels, each with a `val`
EVERYDAY = REPO_ROOT / "data" / "everyday.jsonl"  # hand-written cases from domains no dataset covers
PROVENANCE = ("date", "machine", "command")  # the fields `save_result` adds to every result


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def read_jsonl(path: Path, limit: int | None = None) -> list[dict]:
    """The rows of a JSONL file (only the first `limit` if given), blank lines skipped."""
    with open(path, encoding="utf-8") as handle:
        return list(itertools.islice((json.loads(line) for line in handle if line.strip()), limit))


# ---- the machine ---------------------------------------------------------------------------------

def contention_text(probe: dict[str, float]) -> str:
    return ", ".join(f"{ms:.2f} ms with {n} thread{'s' if int(n) > 1 else ''}" for n, ms in probe.items())


def machine_load_line(before: dict[str, float], after: dict[str, float]) -> str:
    """The markdown bullet that reads two `contention_probe`s, at the start and at the end of a run."""
    return fill("machine-load", before=contention_text(before), after=contention_text(after))


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_line() -> str:
    import torch

    nproc = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 0
    return (f"`nproc` = {nproc}, CPU {cpu_model()}, torch {torch.__version__}, "
            f"torch threads {torch.get_num_threads()} (set explicitly with `torch.set_num_threads`)")


def command_line() -> str:
    """The command that is running, as one would retype it from the repo root."""
    python, *args = sys.orig_argv  # unlike sys.argv, it keeps `-m benchmarks.NAME`
    try:
        rel = os.path.relpath(python, os.getcwd())
        python = python if rel.startswith("..") else rel
    except ValueError:
        pass
    return f"cd {shlex.quote(os.getcwd())} && {shlex.join([python, *args])}"


# ---- results and markdown ------------------------------------------------------------------------

def save_result(section: str, script: str, data: dict, results_dir: Path = RESULTS_DIR) -> Path:
    """Writes `data` with this run's date, machine and command to `<results_dir>/<section>.json`.

    `script` is the module whose `render` reads the file (pass `__spec__.name`, which is the module's import name
    also under `python -m`). Returns the path.
    """
    reserved = {"section", "script", *PROVENANCE} & data.keys()
    if reserved:
        raise ValueError(f"result fields {sorted(reserved)} are set by save_result")
    now = _dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    result = {"section": section, "script": script, "date": now, "machine": machine_line(), "command": command_line(),
              **data}
    results_dir.mkdir(parents=True, exist_ok=True)
    path = results_dir / f"{section}.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


def stored_result(section: str, results_dir: Path = RESULTS_DIR) -> dict:
    """A section's stored figures without their provenance, for a script that adds to them without measuring the rest
    again; `main_run` keeps the date and command of the run that measured the rest (the first such run's)."""
    stored = json.loads((results_dir / f"{section}.json").read_text(encoding="utf-8"))
    result = {k: v for k, v in stored.items() if k not in ("section", "script", *PROVENANCE)}
    result.setdefault("main_run", {k: stored[k] for k in ("date", "command")})
    return result


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return "\n".join(out + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows])


def verdict(passed: bool) -> str:
    return "PASS" if passed else "FAIL"


def fill(template: str, **values) -> str:
    """`templates/<template>.md` filled in with `values` by `str.format`, its parts joined by a blank line.

    A line `@@ KEY` starts a part that is kept only where `values[KEY]` is truthy; a line `@@` alone, one always kept.
    """
    text = (TEMPLATES / f"{template}.md").read_text(encoding="utf-8")
    pieces = re.split(r"^@@ ?(\S*)\n", text, flags=re.MULTILINE)
    kept = [pieces[0]] + [body for key, body in zip(pieces[1::2], pieces[2::2]) if not key or values.get(key)]
    return "\n\n".join(part.strip("\n").format_map(values) for part in kept if part.strip("\n"))
