"""HDF5 dataset format, model batches (the one key vocabulary), splits and broken files."""
import h5py
import numpy as np
import pytest
import torch

from n2amd_driver.data import h5format
from n2amd_driver.data.h5format import DatasetError, open_dataset, read_atoms
from n2amd_driver.engines import get_engine
from n2amd_driver.training.loop import split_indices


@pytest.fixture(scope="module")
def small_dataset(tmp_path_factory):
    """Five labelled frames of rattled Si8 and GaAs8 cells (tblite GFN1), written with the format API."""
    from ase.build import bulk

    engine = get_engine("tblite", method="GFN1-xTB")
    path = tmp_path_factory.mktemp("ds") / "mixed.h5"
    structures = []
    for k in range(5):
        a = bulk("Si", "diamond", a=5.43, cubic=True) if k % 2 == 0 else bulk("GaAs", "zincblende", a=5.65, cubic=True)
        if k == 4:
            a = a.repeat((2, 1, 1))
        a.rattle(0.05, seed=k)
        structures.append(a)
    with h5format.create_dataset(path, engine=engine.describe(), basis_json=engine.basis(["Si", "Ga", "As"]).to_json()) as f:
        labels = []
        for i, a in enumerate(structures):
            h5format.write_structure(f, i, a, source=f"test {i}")
            lab = engine.label(a)
            h5format.write_labels(f, i, lab.as_dict(), lab.fold)
            labels.append(lab)
    return path, structures, labels


def test_round_trip_structures_and_labels(small_dataset):
    path, structures, labels = small_dataset
    with open_dataset(path) as f:
        assert h5format.frame_ids(f) == [0, 1, 2, 3, 4]
        for i, (a, lab) in enumerate(zip(structures, labels)):
            g = f["frames"][h5format.frame_key(i)]
            b = read_atoms(g)
            np.testing.assert_array_equal(b.numbers, a.numbers)
            np.testing.assert_array_equal(b.positions, a.positions)
            np.testing.assert_array_equal(b.cell.array, a.cell.array)
            arrays = h5format.read_frame(g)
            assert arrays["energy"] == lab.energy
            np.testing.assert_array_equal(arrays["hamiltonian"], lab.hamiltonian)  # lossless compression
            np.testing.assert_array_equal(arrays["overlap"], lab.overlap)
            np.testing.assert_array_equal(arrays["forces"], lab.forces)
            assert g.attrs["fold"] == "gamma" and g.attrs["source"] == f"test {i}"


def test_model_batches_concatenate_structures(small_dataset):
    """Both model kinds batch structures through models.batch: atoms stacked, edges offset into their own
    structure, the same edges as the structure alone."""
    from n2amd_driver.models import batch as keys

    _, structures, _ = small_dataset
    species = lambda z: np.zeros(len(z), dtype=np.int64)  # noqa: E731
    b = keys.graph_batch([structures[3], structures[4]], 4.0, species, torch.float64)
    assert b[keys.BATCH].tolist() == [0] * 8 + [1] * 16 and b[keys.NUM_STRUCTURES] == 2
    assert b[keys.POSITIONS].dtype == torch.float64 and b[keys.CELL].shape == (2, 3, 3)
    second = b[keys.BATCH][b[keys.EDGE_INDEX][0]] == 1
    e = b[keys.EDGE_INDEX][:, second]
    assert e.min() >= 8 and e.max() < 24
    single = keys.graph_batch([structures[4]], 4.0, species, torch.float64)
    np.testing.assert_array_equal((e - 8).numpy(), single[keys.EDGE_INDEX].numpy())
    vec = keys.edge_vectors(b, b[keys.EDGE_INDEX], b[keys.EDGE_SHIFT])
    assert float(vec.norm(dim=1).max()) < 4.0


def test_split_indices_are_disjoint_reproducible_and_complete():
    a = split_indices(103, (0.8, 0.1, 0.1), seed=5)
    b = split_indices(103, (0.8, 0.1, 0.1), seed=5)
    c = split_indices(103, (0.8, 0.1, 0.1), seed=6)
    assert [len(x) for x in a] == [82, 11, 10]  # cumulative bounds round(82.4), round(92.7)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not np.array_equal(a[0], c[0])
    assert sorted(np.concatenate(a).tolist()) == list(range(103))
    with pytest.raises(ValueError):
        split_indices(10, (0.5, 0.2))


def test_foreign_corrupt_and_missing_files_are_named(tmp_path):
    foreign = tmp_path / "foreign.h5"
    with h5py.File(foreign, "w") as f:
        f["x"] = np.arange(3)
    with pytest.raises(DatasetError, match="foreign.h5: not an n2amd dataset"):
        open_dataset(foreign)
    corrupt = tmp_path / "corrupt.h5"
    corrupt.write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(200))
    with pytest.raises(DatasetError, match="corrupt.h5: not a readable HDF5 file"):
        open_dataset(corrupt)
    with pytest.raises(DatasetError, match="no such dataset file"):
        open_dataset(tmp_path / "missing.h5")


def test_file_held_by_a_writer_is_named_as_such(small_dataset):
    """A dataset that a running job holds open for writing is reported as that, not as corrupt."""
    import subprocess
    import sys

    path, _, _ = small_dataset
    code = ("import sys, time, h5py; f = h5py.File(sys.argv[1], 'a'); print('open', flush=True); "
            "time.sleep(30)")
    writer = subprocess.Popen([sys.executable, "-c", code, str(path)], stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout.readline().strip() == "open"
        with pytest.raises(DatasetError, match="open for writing by another process"):
            open_dataset(path)
    finally:
        writer.kill()
        writer.wait()


def test_truncated_file_is_named(small_dataset, tmp_path):
    path, _, _ = small_dataset
    cut = tmp_path / "truncated.h5"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 3])
    with pytest.raises(DatasetError, match="truncated.h5"):
        with open_dataset(cut) as f:
            for i in h5format.frame_ids(f):
                h5format.read_frame(f["frames"][h5format.frame_key(i)])
