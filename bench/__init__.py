"""Benchmark of the hub against pygeoapi 0.24: ``python -m bench``; see bench/README.md."""
