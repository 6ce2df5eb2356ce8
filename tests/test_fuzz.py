"""The fuzz targets (tests/fuzzing.py), CI-sized by default.

The long profile is the same tests with more generated inputs: `FUZZ_SCALE=50 .venv/bin/python -m pytest
tests/test_fuzz.py` multiplies every target's examples by 50 (about four minutes on two cores) and draws new
inputs on every run, where the CI size replays the same derandomized ones.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, given, settings

from tests import fuzzing

SCALE = float(os.environ.get("FUZZ_SCALE", "1"))


def inputs(examples: int):
    """`examples` times FUZZ_SCALE inputs, no example database (runs stay independent), no deadline on a busy
    machine. At CI size derandomized (CI replays the same inputs) with the health checks that a slow machine trips
    off; the long profile draws new inputs and reports only failed invariants."""
    ci_size = SCALE == 1
    return settings(
        max_examples=max(1, round(examples * SCALE)),
        deadline=None,
        database=None,
        derandomize=ci_size,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large] if ci_size else list(HealthCheck),
    )


@inputs(150)
@given(fuzzing.JSONL)
def test_jsonl_reader_loses_and_duplicates_no_row(lines):
    fuzzing.check_reader(lines)


@inputs(60)
@given(fuzzing.API_CALL)
def test_the_api_returns_valid_fields_or_a_documented_error(lentil, call):
    fuzzing.check_api(lentil, call)


@inputs(100)
@given(fuzzing.TEXT)
def test_slots_are_exact_spans(lentil, text):
    fuzzing.check_slotter(lentil, text)


@inputs(10)
@given(fuzzing.JSONL)
def test_a_score_job_writes_every_accepted_row_once(lentil, lines):
    fuzzing.check_score_job(lentil, lines)
