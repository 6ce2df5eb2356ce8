"""Fills BENCHMARKS.md from the results files: `python -m benchmarks.render [SECTION ...]`.

Every `benchmarks/results/<section>.json` names its section and the script module whose `render(result)` makes the
section's markdown; the run's date, machine and command go under the section's heading. Each section sits between
`<!-- BEGIN name -->` and `<!-- END name -->` and is replaced in place, so the file keeps its order; a section not yet
in the file is appended. Without arguments every results file is rendered.
"""

from __future__ import annotations

import argparse
import fcntl
import importlib
import json
import os
import re
from pathlib import Path

from benchmarks.common import REPO_ROOT, RESULTS_DIR, TEMPLATES, save_result

BENCHMARKS_MD = REPO_ROOT / "BENCHMARKS.md"
FILE_HEADER = (TEMPLATES / "header.md").read_text(encoding="utf-8")  # what a new BENCHMARKS.md starts with


def load_results(results_dir: Path = RESULTS_DIR) -> dict[str, dict]:
    """Every results file, by section name."""
    results = {}
    for path in sorted(results_dir.glob("*.json")):
        results[path.stem] = json.loads(path.read_text(encoding="utf-8"))
        if results[path.stem]["section"] != path.stem:
            raise ValueError(f"{path} holds section {results[path.stem]['section']!r}")
    return results


def section_markdown(result: dict) -> str:
    """The section's markdown: its script's `render`, with the run's provenance after the heading line."""
    body = importlib.import_module(result["script"]).render(result).strip("\n")
    provenance = f"- Date: {result['date']}\n- Machine: {result['machine']}\n- Command: `{result['command']}`"
    lines = body.split("\n")
    if lines[0].startswith("#"):
        return "\n".join([lines[0], "", provenance, *lines[1:]])
    return provenance + "\n\n" + body


def replace_sections(text: str, sections: dict[str, str]) -> str:
    """`text` with each named section's body replaced, or appended where the section is missing."""
    for name, body in sections.items():
        begin, end = f"<!-- BEGIN {name} -->", f"<!-- END {name} -->"
        section = f"{begin}\n{body}\n{end}"
        pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.DOTALL)
        if pattern.search(text):
            text = pattern.sub(lambda _: section, text, count=1)
        else:
            text = text.rstrip("\n") + "\n\n" + section + "\n"
    return text if text.endswith("\n") else text + "\n"


def render_sections(names: list[str] | None = None, path: Path = BENCHMARKS_MD,
                    results_dir: Path = RESULTS_DIR) -> None:
    """Renders the results of `names` (every results file if None) into the markdown file at `path`."""
    results = load_results(results_dir)
    missing = set(names or ()) - results.keys()
    if missing:
        raise SystemExit(f"no results file for {sorted(missing)} in {results_dir}")
    sections = {name: section_markdown(results[name]) for name in (names or results)}
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+", encoding="utf-8") as handle:  # a lock, so scripts finishing at once do not race
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            handle.seek(0)
            text = handle.read()
            text = replace_sections(text if text.strip() else FILE_HEADER, sections)
            handle.seek(0)
            handle.truncate()
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def publish(section: str, script: str, data: dict, write: bool = True) -> None:
    """What a benchmark script ends with: `save_result` of its figures, then its section rendered into BENCHMARKS.md;
    with `write` False, only the section's markdown printed (results and BENCHMARKS.md left alone)."""
    if not write:
        print(importlib.import_module(script).render({"section": section, "script": script, **data}))
        return
    save_result(section, script, data)
    render_sections([section])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("sections", nargs="*", help="sections to render (default: every results file)")
    parser.add_argument("--output", type=Path, default=BENCHMARKS_MD)
    args = parser.parse_args()
    render_sections(args.sections or None, args.output)


if __name__ == "__main__":
    main()
