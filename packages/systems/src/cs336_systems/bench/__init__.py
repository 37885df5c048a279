"""Benchmarks: one harness (timing, synchronisation, OOM handling, result tables) and one
module per thing measured."""
