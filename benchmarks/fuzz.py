"""Fuzz suite, long profile: the targets of tests/fuzzing.py with many generated inputs each.

    nice -n 10 .venv/bin/python -m benchmarks.fuzz [--scale 1.0]

Hypothesis stops a target at its first failure (and shrinks it to a minimal example, printed here and in the section),
so "failures" counts targets that failed; `tests/test_fuzz.py` runs the same targets at CI size.
"""

from __future__ import annotations

import argparse
import time
import traceback

from benchmarks.common import fill, markdown_table
from benchmarks.render import publish

SECTION = "fuzz"
EXAMPLES = {"jsonl reader": 8000, "slotter": 5000, "Python API": 3000, "score job": 300}


def targets() -> dict:
    """Per target name: the strategy of generated inputs and the check of one input."""
    from spicy_lentil import SpicyLentil
    from spicy_lentil.runtime import configure
    from tests import fuzzing  # a package of the repo root, where `python -m` runs

    configure()
    lentil = SpicyLentil.from_pretrained()
    return {
        "jsonl reader": (fuzzing.JSONL, fuzzing.check_reader),
        "slotter": (fuzzing.TEXT, lambda text: fuzzing.check_slotter(lentil, text)),
        "Python API": (fuzzing.API_CALL, lambda call: fuzzing.check_api(lentil, call)),
        "score job": (fuzzing.JSONL, lambda lines: fuzzing.check_score_job(lentil, lines)),
    }


def fuzz(name: str, strategy, check, examples: int) -> tuple[dict, str | None]:
    """Runs one target; returns its row and, if an invariant failed, the shrunk failure."""
    from hypothesis import HealthCheck, given, settings

    from tests import fuzzing

    run = settings(max_examples=examples, deadline=None, database=None,
                   suppress_health_check=list(HealthCheck))(given(strategy)(check))
    started = time.perf_counter()
    failure = None
    try:
        run()
    except Exception as error:  # noqa: BLE001 - a failed invariant, reported with its shrunk example
        failure = f"{name}: {''.join(traceback.format_exception_only(error))}"
    row = {"target": name, "inputs": fuzzing.TRIED[name], "failed": failure is not None,
           "seconds": time.perf_counter() - started}
    print(f"{name}: {row['inputs']} inputs, {int(row['failed'])} failure(s), {row['seconds']:.0f} s", flush=True)
    return row, failure


def render(result: dict) -> str:
    rows = [[r["target"], r["inputs"], int(r["failed"]), f"{r['seconds']:.0f}"] for r in result["targets"]]
    return fill(SECTION, **result, inputs=sum(r["inputs"] for r in result["targets"]),
                failing=len(result["failures"]), failures_text="\n".join(result["failures"]),
                table=markdown_table(["target", "inputs tried", "failing targets", "seconds"], rows))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every target's number of inputs")
    args = parser.parse_args()
    rows, failures = [], []
    for name, (strategy, check) in targets().items():
        row, failure = fuzz(name, strategy, check, max(1, round(EXAMPLES[name] * args.scale)))
        rows.append(row)
        failures += [failure] if failure else []
    publish(SECTION, __spec__.name, {"targets": rows, "failures": failures})
    print("\n".join(failures) or "no failures")


if __name__ == "__main__":
    main()
