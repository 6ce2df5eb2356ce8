"""The benchmark scripts, run from the repo root as `python -m benchmarks.NAME`; see `benchmarks/common.py`."""
