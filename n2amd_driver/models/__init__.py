"""Equivariant neural-network models (e3nn)."""
