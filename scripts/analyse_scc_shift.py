"""How much of a GFN-xTB Hamiltonian is the self-consistent-charge term, and is it local or per cell?

    .venv/bin/python scripts/analyse_scc_shift.py runs/si64_train.h5 runs/si64_test.h5 \
        [--model si_hamiltonian.pt] [--out docs/bench/scc_shift.json]

For every frame, tblite is run again to get its core Hamiltonian H0; the dataset's converged H minus H0
is the charge term −½ S_ab (V_a + V_b). Its on-site diagonal gives each atom's shell potentials. The
script reports, per frame, the cell average of the 3s and 3p potentials (eV) and their spread over the
atoms, the shift of the levels near the gap that the charge term causes, and how well the cell averages
follow cell-averaged geometry (volume per atom, mean and spread of the nearest-neighbour distances; a
linear least-squares fit over all frames). With ``--model``, also each frame's rigid shift of the
model's levels near the gap (mean error within ±2 eV), to compare with the charge term's own shift.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchlib import provenance  # noqa: E402


def frame_rows(path: str, model=None, window: float = 2.0) -> list[dict]:
    import scipy.linalg as sl
    from ase.neighborlist import neighbor_list

    from n2amd_driver.orbitals.conventions import Basis
    from n2amd_driver.data import h5format
    from n2amd_driver.engines.tblite_engine import TBLiteEngine
    from n2amd_driver.core.units import HARTREE_EV

    rows = []
    with h5format.open_dataset(path) as f:
        basis = Basis.from_json(f.attrs["basis"])
        engine = TBLiteEngine(**{k: v for k, v in json.loads(f.attrs["engine"]).items()
                                 if k in ("method", "accuracy", "max_iter", "charge")})
        for i in h5format.frame_ids(f):
            g = f["frames"][h5format.frame_key(i)]
            atoms = h5format.read_atoms(g)
            H, S, eps, occ = (g[k][()] for k in ("hamiltonian", "overlap", "orbital_energies", "occupations"))
            res = engine._calculator(atoms).singlepoint()
            T = basis.engine_transform(atoms.numbers)
            H0 = T.T @ res.get("hamiltonian-matrix") @ T * HARTREE_EV
            diag = np.diag(H - H0)
            offs = basis.orbital_offsets(atoms.numbers)
            shells = basis.shells_of(atoms.get_chemical_symbols()[0])
            pot = {}
            for name, l in (("s", 0), ("p", 1)):
                k = shells.index(l)
                start = sum(2 * ll + 1 for ll in shells[:k])
                per_atom = np.array([diag[offs[a] + start : offs[a] + start + 2 * l + 1].mean()
                                     for a in range(len(atoms))])
                pot[name] = per_atom
            nocc = int(round(occ.sum() / 2))
            sel = (eps >= eps[nocc - 1] - window) & (eps <= eps[nocc] + window)
            eps0 = sl.eigh(H0, S, eigvals_only=True)
            _, dist = neighbor_list("id", atoms, 2.8)
            row = {"dataset": path, "frame": i, "source": g.attrs.get("source", ""),
                   "scc_s_mean_eV": float(pot["s"].mean()), "scc_s_std_eV": float(pot["s"].std()),
                   "scc_p_mean_eV": float(pot["p"].mean()), "scc_p_std_eV": float(pot["p"].std()),
                   "scc_level_shift_eV": float(np.mean(eps[sel] - eps0[sel])),
                   "volume_per_atom_A3": atoms.get_volume() / len(atoms),
                   "nn_mean_A": float(dist.mean()), "nn_std_A": float(dist.std())}
            if model is not None:
                em = sl.eigh(model.hamiltonian(atoms, S), S, eigvals_only=True)
                row["model_rigid_shift_eV"] = float(np.mean(em[sel] - eps[sel]))
            rows.append(row)
            print(f"{path} frame {i}: <V_s> {row['scc_s_mean_eV']:.3f} ± {row['scc_s_std_eV']:.3f}, "
                  f"<V_p> {row['scc_p_mean_eV']:.3f} ± {row['scc_p_std_eV']:.3f} eV, level shift "
                  f"{row['scc_level_shift_eV']:.3f} eV"
                  + (f", model rigid shift {1000 * row['model_rigid_shift_eV']:.1f} meV" if model else ""),
                  flush=True)
    return rows


def summary(rows: list[dict]) -> dict:
    X = np.array([[1.0, r["volume_per_atom_A3"], r["nn_mean_A"], r["nn_std_A"]] for r in rows])
    out = {"frames": len(rows)}
    for key in ("s", "p"):
        y = np.array([r[f"scc_{key}_mean_eV"] for r in rows])
        c, *_ = np.linalg.lstsq(X, y, rcond=None)
        out[f"{key}_between_frames_std_meV"] = 1000 * float(y.std())
        out[f"{key}_within_frame_std_meV"] = 1000 * float(np.mean([r[f"scc_{key}_std_eV"] for r in rows]))
        out[f"{key}_geometry_fit_residual_meV"] = 1000 * float((y - X @ c).std())
    shift = np.array([r["scc_level_shift_eV"] for r in rows])
    out["level_shift_mean_eV"] = float(shift.mean())
    out["level_shift_std_meV"] = 1000 * float(shift.std())
    if "model_rigid_shift_eV" in rows[0]:
        m = np.array([r["model_rigid_shift_eV"] for r in rows])
        out["model_rigid_shift_mean_abs_meV"] = 1000 * float(np.abs(m).mean())
        out["model_shift_vs_scc_shift_slope"] = float(np.polyfit(shift, m, 1)[0])
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("datasets", nargs="+", help="n2amd datasets with tblite labels")
    ap.add_argument("--model", help="a Hamiltonian model (file or bundled name) to compare its rigid shifts")
    ap.add_argument("--out", default="runs/scc_shift.json")
    args = ap.parse_args()
    model = None
    if args.model:
        from n2amd_driver.models.io import resolve_model_path
        from n2amd_driver.models.io import load_hamiltonian_model

        model = load_hamiltonian_model(resolve_model_path(args.model), device="cpu")
    rows = [r for path in args.datasets for r in frame_rows(path, model)]
    res = {"summary": summary(rows), "frames": rows, "model": args.model, "provenance": provenance()}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(res, indent=2))
    for k, v in res["summary"].items():
        print(f"{k}: {v:.4g}" if isinstance(v, float) else f"{k}: {v}")


if __name__ == "__main__":
    main()
