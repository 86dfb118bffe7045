"""Benchmark suite of fewsound_sb (run ``python bench/run_all.py``; see bench/README.md)."""
