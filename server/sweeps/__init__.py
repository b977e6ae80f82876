"""Tuning sweeps: Optuna searches whose trials are ordinary jobs (see service.py)."""
