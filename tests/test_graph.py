"""Periodic neighbour graph against a brute-force image search."""
import itertools

import numpy as np
import pytest

from n2amd_driver.core.graph import graph_from_atoms, neighbour_graph


def brute_force(pos, cell, pbc, cutoff):
    """Every (i, j, shift) with |x_j + shift·cell − x_i| < cutoff, by looping over enough images."""
    pbc = np.broadcast_to(pbc, (3,))
    n = [0, 0, 0]
    if np.any(pbc):
        # plane spacing d_k = V / |a_l × a_m|; images beyond ceil(cutoff / d_k) + 1 cannot be within the cutoff
        vol = abs(np.linalg.det(cell))
        for k in range(3):
            if pbc[k]:
                d = vol / np.linalg.norm(np.cross(cell[(k + 1) % 3], cell[(k + 2) % 3]))
                n[k] = int(np.ceil(cutoff / d)) + 1
    out = {}
    for s in itertools.product(*[range(-m, m + 1) for m in n]):
        d = pos[None, :, :] + np.array(s) @ cell - pos[:, None, :]
        r = np.linalg.norm(d, axis=2)
        for a, b in zip(*np.nonzero(r < cutoff)):
            if a == b and not any(s):
                continue
            out[(int(a), int(b)) + tuple(s)] = d[a, b]
    return out


def as_dict(g):
    return {(int(i), int(j)) + tuple(int(x) for x in s): v
            for i, j, s, v in zip(g.edge_index[0], g.edge_index[1], g.shifts, g.vectors)}


def compare(pos, cell, pbc, cutoff):
    g = neighbour_graph(pos, cell, pbc, cutoff)
    got, ref = as_dict(g), brute_force(pos, cell, pbc, cutoff)
    assert set(got) == set(ref)
    for k, v in ref.items():
        np.testing.assert_allclose(got[k], v, atol=1e-12)
    # r_ij = x_j − x_i + S·cell for every edge
    i, j = g.edge_index
    np.testing.assert_allclose(g.vectors, pos[j] - pos[i] + g.shifts @ cell, atol=1e-12)
    return g


TRICLINIC = np.array([[3.1, 0.0, 0.0], [1.2, 2.9, 0.0], [0.7, -0.9, 3.3]])


@pytest.mark.parametrize("cutoff", [1.5, 4.0, 10.0])
def test_triclinic_small_cell_large_cutoff(cutoff):
    rng = np.random.default_rng(0)
    pos = rng.random((3, 3)) @ TRICLINIC
    g = compare(pos, TRICLINIC, True, cutoff)
    if cutoff == 10.0:
        # the cell is ~3 Å wide: one pair has hundreds of images, and every atom sees its own images
        pairs, counts = np.unique(g.edge_index, axis=1, return_counts=True)
        assert counts.max() > 100
        assert np.any(g.edge_index[0] == g.edge_index[1])


def test_very_skewed_cell():
    cell = np.array([[4.0, 0.0, 0.0], [3.6, 1.5, 0.0], [-3.5, 1.2, 2.2]])  # strongly sheared
    pos = np.random.default_rng(1).random((4, 3)) @ cell
    compare(pos, cell, True, 7.5)


def test_single_atom_sees_only_its_images():
    cell = np.diag([2.5, 2.7, 3.0])
    g = compare(np.zeros((1, 3)), cell, True, 6.0)
    assert np.all(g.edge_index == 0)
    assert len(g.shifts) > 0 and not np.any(np.all(g.shifts == 0, axis=1))


def test_mixed_and_no_periodicity():
    rng = np.random.default_rng(2)
    pos = rng.random((5, 3)) @ TRICLINIC
    compare(pos, TRICLINIC, [True, False, True], 6.0)
    g = compare(pos, TRICLINIC, False, 6.0)
    assert not np.any(g.shifts)


def test_reverse_edges_and_symmetry():
    pos = np.random.default_rng(3).random((3, 3)) @ TRICLINIC
    g = neighbour_graph(pos, TRICLINIC, True, 8.0)
    rev = g.reverse_edges()
    np.testing.assert_array_equal(g.edge_index[0, rev], g.edge_index[1])
    np.testing.assert_array_equal(g.shifts[rev], -g.shifts)
    np.testing.assert_allclose(g.vectors[rev], -g.vectors, atol=1e-12)


def test_self_images_can_be_dropped(triclinic_si):
    g_all = graph_from_atoms(triclinic_si, 6.0)
    g = graph_from_atoms(triclinic_si, 6.0, self_images=False)
    assert np.all(g.edge_index[0] != g.edge_index[1])
    assert g_all.num_edges - g.num_edges == np.sum(g_all.edge_index[0] == g_all.edge_index[1])


def test_translation_and_wrapping_do_not_change_distances(triclinic_si):
    g1 = graph_from_atoms(triclinic_si, 7.0)
    moved = triclinic_si.copy()
    moved.positions += np.array([10.3, -4.1, 2.2])
    moved.wrap()
    g2 = graph_from_atoms(moved, 7.0)
    np.testing.assert_allclose(np.sort(g1.distances), np.sort(g2.distances), atol=1e-10)


def test_degenerate_periodic_cell_is_refused():
    with pytest.raises(ValueError, match="degenerate"):
        neighbour_graph(np.zeros((2, 3)), np.zeros((3, 3)), True, 3.0)
