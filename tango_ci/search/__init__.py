"""Target-aware architecture and hyper-parameter search with Optuna."""
