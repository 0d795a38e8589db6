"""Profiling a device runner: time a designed sample there and fit its latency models."""
