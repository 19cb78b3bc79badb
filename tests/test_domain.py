"""The training domain (closest distance per element pair) recorded in model files, and its warning in
every route that evaluates a model: calculator, couplings, i-PI, LAMMPS."""
import warnings

import numpy as np
import pytest
from ase.build import bulk

from n2amd_driver.models.domain import DOMAIN_FACTOR, edge_minima, out_of_domain, training_domain
from n2amd_driver.models.io import BUNDLED, load_model

BOHR = 0.529177210903


def squeezed(symbols="Si", a=5.43, shrink=0.85):
    """A cubic diamond/zinc-blende cell whose atom 1 is moved towards atom 0 (bond × ``shrink``)."""
    atoms = bulk(symbols, "zincblende" if len(symbols) > 2 else "diamond", a=a, cubic=True)
    atoms.positions[1] = atoms.positions[0] + shrink * (atoms.positions[1] - atoms.positions[0])
    return atoms


def test_training_domain_is_the_closest_pair_per_element_pair():
    si = bulk("Si", "diamond", a=5.43, cubic=True)
    gaas = bulk("GaAs", "zincblende", a=5.65, cubic=True)
    d = training_domain([si, gaas, squeezed()], source="test")
    bond = 5.43 * np.sqrt(3) / 4
    assert d["pair_min_A"]["Si-Si"] == pytest.approx(0.85 * bond, rel=1e-12)
    assert d["pair_min_A"]["As-Ga"] == pytest.approx(5.65 * np.sqrt(3) / 4, rel=1e-12)
    assert d["pair_min_A"]["Ga-Ga"] == pytest.approx(5.65 / np.sqrt(2), rel=1e-12)  # second neighbours
    assert d["frames"] == 3 and d["elements"] == ["As", "Ga", "Si"] and d["factor"] == DOMAIN_FACTOR
    assert edge_minima(np.array(["Si", "C"]), np.array(["C", "C"]), np.array([1.9, 1.4])) == {"C-Si": 1.9, "C-C": 1.4}


def test_out_of_domain_names_the_pair_and_the_training_minimum():
    si = bulk("Si", "diamond", a=5.43, cubic=True)
    domain = training_domain([si])
    bond = 5.43 * np.sqrt(3) / 4
    assert out_of_domain(si, domain) is None
    assert out_of_domain(squeezed(shrink=0.95), domain) is None  # within the 0.9 margin
    text = out_of_domain(squeezed(shrink=0.85), domain)
    assert text.startswith(f"atoms 0 (Si) and 1 (Si) are {0.85 * bond:.3f} Å apart, outside the model's training "
                           f"domain: the closest Si-Si pair in its training structures is {bond:.3f} Å")
    assert out_of_domain(squeezed(shrink=0.85), None) is None  # a file from before domains: nothing to say
    # a pair that never came within the scan cutoff in training: Ga-Ga where zinc blende has As
    gaas = bulk("GaAs", "zincblende", a=5.65, cubic=True)
    g = training_domain([gaas], cutoff=3.0)
    antisite = gaas.copy()
    antisite.symbols[1] = "Ga"
    assert "its training structures have no Ga-Ga pair within 3 Å" in out_of_domain(antisite, g)


@pytest.mark.parametrize("name", sorted(p.name for p in BUNDLED.glob("*.pt")))
def test_every_bundled_model_knows_its_domain(name):
    from n2amd_driver.models.domain import model_domain

    model = load_model(name, device="cpu")
    d = model_domain(model)
    assert d is not None and set(d["elements"]) == set(model.elements)
    # thermal MD at the training temperatures never comes near: the minima are bond lengths less a few %
    bonds = {"Si-Si": 2.351, "As-Ga": 2.447}
    for pair, bond in bonds.items():
        if pair in d["pair_min_A"]:
            assert 0.8 * bond < d["pair_min_A"][pair] < bond


def test_calculator_ipi_and_lammps_warn_once_for_squeezed_bonds():
    """The bundled Si MLFF, evaluated on a bond squeezed to 80 % (1.88 Å: not 'close atoms', which start at
    1.33 Å, but below 0.9 × the 2.13 Å of its training frames): each route warns once and runs on."""
    from n2amd_driver.md import lammps_bridge
    from n2amd_driver.md.ipi_client import ModelEvaluator
    from n2amd_driver.models.calculator import N2AMDCalculator

    atoms = squeezed(shrink=0.8)
    atoms.calc = N2AMDCalculator("si_mlff.pt")
    with pytest.warns(UserWarning, match=r"N2AMDCalculator: atoms 0 \(Si\) and 1 \(Si\) are 1.881 Å apart, outside "
                                         r"the model's training domain: the closest Si-Si pair .* is 2.133 Å"):
        assert np.isfinite(atoms.get_potential_energy())
    atoms.positions[1] += 0.001
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # once per calculator, not every MD step
        atoms.get_potential_energy()
    quiet = N2AMDCalculator("si_mlff.pt", close_atoms="off")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        quiet.get_potential_energy(atoms)
        N2AMDCalculator("si_mlff.pt").get_potential_energy(bulk("Si", "diamond", a=5.43, cubic=True))

    ev = ModelEvaluator("si_mlff.pt", element="Si")
    with pytest.warns(UserWarning, match="i-PI driver, a structure i-PI sent: atoms 0 .* outside the model's"):
        ev(atoms.cell.array.T / BOHR, atoms.positions / BOHR)

    h = lammps_bridge.load_pair("si_mlff.pt", ["Si"], dtype="float64")
    x = np.ascontiguousarray(squeezed(shrink=0.8).positions)
    f = np.zeros_like(x)
    types = np.ones(len(atoms), np.int32)
    tags = np.arange(1, len(atoms) + 1, dtype=np.int64)
    # one rank, no ghosts: only the pairs inside the cell (enough for the squeezed bond 1-2)
    with pytest.warns(UserWarning, match=r"pair n2amd, atoms by LAMMPS ID: atoms 1 \(Si\) and 2 \(Si\) are 1.881 Å"):
        lammps_bridge.compute_pair(h, memoryview(x), memoryview(f), memoryview(types), memoryview(tags),
                                   len(atoms), len(atoms))


def test_couplings_warns_and_lists_frames_outside_the_domain(tmp_path):
    import ase.io

    from n2amd_driver.namd.couplings_file import read_series
    from n2amd_driver.namd.couplings_job import load_config, run_couplings

    good = bulk("Si", "diamond", a=5.43, cubic=True)
    good.rattle(0.03, seed=1)
    bad = squeezed(shrink=0.8)
    ase.io.write(tmp_path / "t.extxyz", [good, good, bad], format="extxyz")
    cfg = load_config(None, {"trajectory": str(tmp_path / "t.extxyz"), "dt_fs": 1.0, "output": str(tmp_path / "c.h5"),
                             "hamiltonian": {"model": "si_hamiltonian.pt"}, "remove_drift": False, "plots": False,
                             "window": {"valence": 2, "conduction": 2}})
    with pytest.warns(UserWarning, match=r"t.extxyz: 1 of 3 selected frames lie outside the model's training domain "
                                         r"\(listed in the output's metadata\); selected frame 2: atoms 0 \(Si\)"):
        summary = run_couplings(cfg, progress=False)
    assert summary["frames_outside_domain"] == 1
    assert read_series(tmp_path / "c.h5").meta["frames_outside_domain"] == [2]
