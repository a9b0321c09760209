"""Evaluation metrics computed from generated samples (host side, NumPy)."""
