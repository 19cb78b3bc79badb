"""Orbital conventions against explicit real-harmonic polynomials, and Wigner-D properties."""
import numpy as np
import pytest
import torch
from e3nn import o3

from n2amd_driver.orbitals.conventions import ENGINES, Basis, convention_matrix, wigner_D

from .conftest import random_orthogonal

S3, S5, S15 = np.sqrt(3), np.sqrt(5), np.sqrt(15)


def poly(name, r):
    """Real harmonics with mean square 1 over the sphere ('component' normalisation), unit vectors r."""
    x, y, z = r.T
    table = {
        "s": np.ones_like(x), "x": S3 * x, "y": S3 * y, "z": S3 * z,
        "xy": S15 * x * y, "yz": S15 * y * z, "xz": S15 * x * z,
        "z2": S5 / 2 * (3 * z**2 - 1), "x2-y2": S15 / 2 * (x**2 - y**2),
    }
    return table[name]


# each engine's functions, in its own order, with its own signs (from each code's documentation)
ORDERS = {
    "pyscf": {1: ["x", "y", "z"], 2: ["xy", "yz", "z2", "xz", "x2-y2"]},
    "tblite": {1: ["y", "z", "x"], 2: ["xy", "yz", "z2", "xz", "x2-y2"]},
    "openmx": {1: ["x", "y", "z"], 2: ["z2", "x2-y2", "xy", "xz", "yz"]},
    "siesta": {1: ["-y", "z", "-x"], 2: ["xy", "-yz", "z2", "-xz", "x2-y2"]},
    "abacus": {1: ["z", "-x", "-y"], 2: ["z2", "-xz", "-yz", "x2-y2", "xy"]},
}


def engine_functions(engine, l, r):
    if l == 0:
        return poly("s", r)[:, None]
    cols = []
    for name in ORDERS[engine][l]:
        sign = -1.0 if name.startswith("-") else 1.0
        cols.append(sign * poly(name.lstrip("-"), r))
    return np.stack(cols, axis=1)


@pytest.mark.parametrize("engine", [e for e in ENGINES if e != "e3nn"])
@pytest.mark.parametrize("l", [0, 1, 2])
def test_convention_matrix_maps_e3nn_harmonics_onto_engine_functions(engine, l):
    r = np.random.default_rng(0).normal(size=(50, 3))
    r /= np.linalg.norm(r, axis=1, keepdims=True)
    y_e3nn = o3.spherical_harmonics(l, torch.from_numpy(r), normalize=True, normalization="component").numpy()
    C = convention_matrix(engine, l)
    np.testing.assert_allclose(y_e3nn @ C.T, engine_functions(engine, l, r), atol=1e-12)
    np.testing.assert_allclose(C @ C.T, np.eye(2 * l + 1), atol=1e-14)


def test_pyscf_high_l_is_orthogonal_and_fitted():
    C = convention_matrix("pyscf", 3)
    np.testing.assert_allclose(C @ C.T, np.eye(7), atol=1e-10)


@pytest.mark.parametrize("l", [0, 1, 2, 3])
@pytest.mark.parametrize("improper", [False, True])
def test_wigner_D_rotates_harmonics(l, improper):
    Q = random_orthogonal(7 + l, improper)
    r = np.random.default_rng(1).normal(size=(20, 3))
    y = lambda v: o3.spherical_harmonics(l, torch.from_numpy(v), normalize=True, normalization="component").numpy()
    D = wigner_D(l, Q)
    # D of Irrep(l, (−1)^l) carries the orbital's parity: Y_l(−r) = (−1)^l Y_l(r) is built in
    np.testing.assert_allclose(y(r @ Q.T), y(r) @ D.T, atol=1e-12)
    if improper:
        np.testing.assert_allclose(wigner_D(l, -np.eye(3)), (-1) ** l * np.eye(2 * l + 1), atol=1e-12)
    np.testing.assert_allclose(D @ D.T, np.eye(2 * l + 1), atol=1e-12)


def test_basis_sizes_offsets_and_json():
    b = Basis({"Ga": (0, 1, 2), "As": (0, 1)}, name="test", engine_order="tblite")
    numbers = [31, 33, 33]
    np.testing.assert_array_equal(b.orbital_offsets(numbers), [0, 9, 13, 17])
    assert b.shell_list(numbers)[2] == (0, 2, 4)
    assert Basis.from_json(b.to_json()) == b
    T = b.engine_transform(numbers)
    np.testing.assert_allclose(T @ T.T, np.eye(17), atol=1e-14)
    with pytest.raises(ValueError, match="Si"):
        b.orbital_offsets([14, 31])
