"""Readers of the real on-disk dataset formats (FreiHAND, RHD, STB)."""
