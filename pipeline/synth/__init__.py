"""Synthetic hands written in the real dataset formats (the offline default)."""
