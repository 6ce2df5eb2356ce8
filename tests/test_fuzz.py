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


def ci(examples: int):
    """`examples` times FUZZ_SCALE inputs, no example database (runs stay independent), no deadline on a busy
    machine; derandomized at CI size, so that CI replays the same inputs."""
    return settings(
        max_examples=max(1, round(examples * SCALE)),
        deadline=None,
        database=None,
        derandomize=SCALE == 1,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


@ci(150)
@given(fuzzing.JSONL)
def test_jsonl_reader_loses_and_duplicates_no_row(lines):
    fuzzing.check_reader(lines)


@ci(60)
@given(fuzzing.API_CALL)
def test_the_api_returns_valid_fields_or_a_documented_error(lentil, call):
    fuzzing.check_api(lentil, call)


@ci(100)
@given(fuzzing.TEXT)
def test_slots_are_exact_spans(lentil, text):
    fuzzing.check_slotter(lentil, text)


@ci(10)
@given(fuzzing.JSONL)
def test_a_score_job_writes_every_accepted_row_once(lentil, lines):
    fuzzing.check_score_job(lentil, lines)
