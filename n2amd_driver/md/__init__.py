"""Molecular-dynamics engines (LAMMPS, i-PI) behind thin adapters."""
