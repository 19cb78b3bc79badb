"""HDF5 dataset format, torch access (batching, splits, streaming) and broken files."""
import h5py
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from n2amd_driver.data import (DatasetError, FrameDataset, StreamingFrameDataset, collate_frames, open_dataset,
                               read_atoms, split_indices)
from n2amd_driver.data import h5format
from n2amd_driver.engines import get_engine


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


def test_torch_dataset_and_batching(small_dataset):
    path, structures, labels = small_dataset
    ds = FrameDataset(path, cutoff=4.0, keys=("energy", "forces", "hamiltonian"))
    assert len(ds) == 5
    item = ds[1]
    assert item["positions"].dtype == torch.float64 and item["numbers"].tolist() == list(structures[1].numbers)
    loader = DataLoader(ds, batch_size=3, collate_fn=collate_frames, shuffle=False)
    batches = list(loader)
    assert [len(b["num_atoms"]) for b in batches] == [3, 2]
    b = batches[1]  # frames 3 (8 atoms) and 4 (16 atoms)
    assert b["batch"].tolist() == [0] * 8 + [1] * 16
    assert b["ptr"].tolist() == [0, 8, 24]
    # edges of the second frame point into its own atoms, and reproduce its vectors
    e = b["edge_index"][:, b["edge_batch"] == 1]
    assert e.min() >= 8 and e.max() < 24
    single = ds[4]
    np.testing.assert_array_equal((e - 8).numpy(), single["edge_index"].numpy())
    assert b["energy"][1].item() == labels[4].energy
    assert torch.equal(b["hamiltonian"][1], torch.from_numpy(labels[4].hamiltonian))


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


def test_streaming_visits_every_frame_once_per_epoch(small_dataset):
    path, structures, _ = small_dataset
    ds = StreamingFrameDataset(path, cutoff=3.0, block_size=2, seed=1)
    seen = [int(x["num_atoms"]) * 1000 + int(x["numbers"][0]) + round(float(x["energy"]), 6) for x in ds]
    assert len(seen) == 5 and len(set(seen)) == 5
    order1 = [float(x["energy"]) for x in ds]
    ds.set_epoch(1)
    order2 = [float(x["energy"]) for x in ds]
    assert sorted(order1) == sorted(order2)
    # two DataLoader workers split the blocks between them and still cover everything once
    loader = DataLoader(ds, batch_size=None, num_workers=2)
    assert sorted(float(x["energy"]) for x in loader) == sorted(order1)


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


def test_truncated_file_is_named(small_dataset, tmp_path):
    path, _, _ = small_dataset
    cut = tmp_path / "truncated.h5"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 3])
    with pytest.raises(DatasetError, match="truncated.h5"):
        with open_dataset(cut) as f:
            for i in h5format.frame_ids(f):
                h5format.read_frame(f["frames"][h5format.frame_key(i)])
