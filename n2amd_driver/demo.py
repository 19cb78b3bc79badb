"""``n2amd demo``: what runs on the bundled default.

At this stage of the project the demo is the data stage of the pipeline on Si: sample 8-atom cells
with LAMMPS (Tersoff MD), label them with GFN2-xTB (tblite) into an HDF5 dataset, summarise it, and
compute the GFN2-xTB electronic structure of a 64-atom Si cell. The later stages (NN Hamiltonian,
MLFF MD in LAMMPS, couplings, surface hopping) join the demo as they land.
"""
from __future__ import annotations

import time
from pathlib import Path


def run_demo(workdir: Path, quick: bool = False) -> int:
    from ase.build import bulk

    from .cli import ASSETS, _gap_text
    from .data.generate import dataset_info, generate, load_config
    from .engines import get_engine

    workdir.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    print(f"[demo] run folder: {workdir.resolve()}")
    overrides = {"sampling": {"temperatures": [300, 600], "strains": [0.0, 0.02], "frames_per_condition": 1 if quick else 2,
                              "equilibration_fs": 500}}
    cfg = load_config(ASSETS / "configs" / "data_si.yaml", overrides)
    print("[demo] 1/2 dataset: Tersoff MD snapshots of Si8, labelled with GFN2-xTB (tblite)")
    summary = generate(cfg, workdir / "si_gfn2_demo.h5", workers=2)
    print(dataset_info(summary.path))
    print("[demo] 2/2 reference electronic structure of 64-atom Si (GFN2-xTB, Γ)")
    atoms = bulk("Si", "diamond", a=5.43, cubic=True).repeat(2)
    labels = get_engine("tblite", method="GFN2-xTB").label(atoms, name="Si64 (perfect crystal)")
    print(f"  E = {labels.energy / len(atoms):.4f} eV/atom; {_gap_text(labels)}")
    print(f"[demo] finished in {time.time() - t0:.0f} s")
    return 0 if summary.failed == 0 else 1
