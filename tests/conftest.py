import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import bulk, molecule


@pytest.fixture(autouse=True)
def _default_dtype_is_restored():
    """Every test starts with torch's default dtype and may not leave another behind: results must not
    depend on the order tests run in."""
    before = torch.get_default_dtype()
    yield
    after = torch.get_default_dtype()
    torch.set_default_dtype(before)
    assert after == before, f"the test left torch's default dtype at {after} (was {before})"


@pytest.fixture
def float64():
    """torch's default dtype float64 for one test (e3nn builds its constants in it), restored afterwards."""
    from n2amd_driver.models.io import default_dtype

    with default_dtype(torch.float64):
        yield


def random_orthogonal(seed: int, improper: bool = False) -> np.ndarray:
    """A random rotation (det +1), or a rotation followed by inversion (det −1)."""
    q, r = np.linalg.qr(np.random.default_rng(seed).normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] *= -1
    return -q if improper else q


@pytest.fixture
def si8() -> Atoms:
    a = bulk("Si", "diamond", a=5.43, cubic=True)
    a.rattle(0.05, seed=3)
    return a


@pytest.fixture
def gaas8() -> Atoms:
    a = bulk("GaAs", "zincblende", a=5.65, cubic=True)
    a.rattle(0.05, seed=4)
    return a


@pytest.fixture
def triclinic_si() -> Atoms:
    return make_triclinic_si()


def make_triclinic_si() -> Atoms:
    """A 2-atom Si cell with a strongly skewed (triclinic) lattice."""
    a = bulk("Si", "diamond", a=5.43)
    a.set_cell(a.cell.array @ np.array([[1.0, 0.05, -0.03], [0.02, 0.97, 0.06], [-0.04, 0.01, 1.04]]),
               scale_atoms=True)
    a.rattle(0.03, seed=5)
    return a


@pytest.fixture
def water() -> Atoms:
    a = molecule("H2O")
    a.rattle(0.02, seed=6)
    return a


@pytest.fixture(scope="session")
def nnh_model(tmp_path_factory):
    """An NNH model file (band energy of a small Hamiltonian model, no remainder): untrained weights
    scaled down so that forces are moderate; what is tested is the MD coupling (LAMMPS, i-PI), not the physics."""
    from n2amd_driver.engines import get_engine
    from n2amd_driver.models.hamiltonian import HamiltonianConfig, HamiltonianModel
    from n2amd_driver.models.io import default_dtype, save_nnh_model
    from n2amd_driver.training.hamiltonian import save_model

    tmp = tmp_path_factory.mktemp("nnh")
    basis = get_engine("tblite", method="GFN1-xTB").basis(["Si"])
    with default_dtype(torch.float64):
        torch.manual_seed(3)
        hm = HamiltonianModel(HamiltonianConfig(elements=["Si"], basis_json=basis.to_json(), r_block=5.0, layers=1,
                                                onsite_shift={"Si": [-14, -6, -6, -6, -1, -1, -1, -1, -1]}))
    with torch.no_grad():
        for name, p in hm.named_parameters():
            if name.startswith(("edge_out", "onsite")):
                p.mul_(0.05)
    save_model(hm.eval(), tmp / "h.pt", {"valence_electrons": {"Si": 4.0}},
               {"engine": "tblite", "method": "GFN1-xTB"}, {}, 0)
    return save_nnh_model(tmp / "nnh.pt", tmp / "h.pt", None, kT=0.1)


def _split_domain(dataset, run) -> dict:
    """The domain a training run should have recorded: closest pairs over its training split's frames."""
    import json

    from n2amd_driver.models.domain import training_domain
    from n2amd_driver.training.forcefield import load_frames

    frames, _ = load_frames(dataset)
    train = json.loads((run / "split.json").read_text())["train"]
    return training_domain([frames[i]["atoms"] for i in train],
                           source=f"{dataset}: training split, {len(train)} frames")


@pytest.fixture
def training_split_domain():
    return _split_domain
