"""Fuzz suite, long profile: the targets of tests/fuzzing.py with many generated inputs each.

    nice -n 10 .venv/bin/python benchmarks/fuzz.py [--scale 1.0]

Writes the inputs tried and the failures found per target into the `fuzz` section of BENCHMARKS.md.
Hypothesis stops a target at its first failure (and shrinks it to a minimal example, printed here
and in the section), so "failures" counts targets that failed; `tests/test_fuzz.py` runs the same
targets at CI size.
"""

from __future__ import annotations

import argparse
import sys
import time
import traceback

from common import REPO_ROOT, markdown_table, write_section

sys.path.insert(0, str(REPO_ROOT))

from hypothesis import HealthCheck, given, settings  # noqa: E402

from spicy_lentil import SpicyLentil  # noqa: E402
from spicy_lentil.runtime import configure  # noqa: E402
from tests import fuzzing  # noqa: E402

EXAMPLES = {"jsonl reader": 8000, "slotter": 5000, "Python API": 3000, "score job": 300}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every target's number of inputs")
    args = parser.parse_args()
    configure()
    lentil = SpicyLentil.from_pretrained()
    targets = {
        "jsonl reader": (fuzzing.JSONL, fuzzing.check_reader),
        "slotter": (fuzzing.TEXT, lambda text: fuzzing.check_slotter(lentil, text)),
        "Python API": (fuzzing.API_CALL, lambda call: fuzzing.check_api(lentil, call)),
        "score job": (fuzzing.JSONL, lambda lines: fuzzing.check_score_job(lentil, lines)),
    }
    rows, failures = [], []
    for name, (strategy, check) in targets.items():
        examples = max(1, round(EXAMPLES[name] * args.scale))
        run = settings(max_examples=examples, deadline=None, database=None,
                       suppress_health_check=list(HealthCheck))(given(strategy)(check))
        started = time.perf_counter()
        try:
            run()
            outcome = 0
        except Exception as error:  # noqa: BLE001 - a failed invariant, reported with its shrunk example
            outcome = 1
            failures.append(f"{name}: {''.join(traceback.format_exception_only(error))}")
        seconds = time.perf_counter() - started
        rows.append([name, fuzzing.TRIED[name], outcome, f"{seconds:.0f}"])
        print(f"{name}: {fuzzing.TRIED[name]} inputs, {outcome} failure(s), {seconds:.0f} s", flush=True)
    total = sum(row[1] for row in rows)
    lines = [
        "## Fuzz suite, long profile",
        "",
        "Generated inputs (Hypothesis) per target: random Unicode with lone surrogates and control characters, "
        "random JSON shapes, raw bytes, empty and repeated (long) fields. Invariants: only TypeError/ValueError "
        "from the API, scores finite and in [0, 1], spans exact, every non-blank JSONL line a document or a "
        "reject exactly once, a score job writing each accepted row once.",
        "",
        markdown_table(["target", "inputs tried", "failing targets", "seconds"], rows),
        "",
        f"Total: {total} inputs, {len(failures)} failing target(s).",
    ]
    if failures:
        lines += ["", "```", *failures, "```"]
    write_section("fuzz", "\n".join(lines))
    print("\n".join(failures) or "no failures")


if __name__ == "__main__":
    main()
