"""The fuzz targets (tests/fuzzing.py) at CI size; `benchmarks/fuzz.py` runs them long."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings

from tests import fuzzing


def ci(examples: int):
    """CI-sized: few examples, no example database (runs stay independent), no deadline on a busy machine."""
    return settings(
        max_examples=examples,
        deadline=None,
        database=None,
        derandomize=True,
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
