"""Benchmarks of issue 14 (`make bench`; README "Performance"): scripts, run as `python bench/<name>.py`."""
