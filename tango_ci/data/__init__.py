"""Datasets: layouts on disk, synthetic data, loading and fingerprints."""
