"""MD trajectories from the engines users run: LAMMPS dump (custom), i-PI xyz, extended XYZ (anything ASE reads).

Every reader returns a list of :class:`ase.Atoms` (positions Å, velocities Å/fs in ``atoms.arrays["velocities_A_fs"]``
when the file has them) in the file's atom order sorted by atom id. :func:`unwrap` makes consecutive frames
continuous (each atom moves by its minimum-image displacement), which cross-time overlaps need: an atom that
re-enters the cell on the other side must not look like a jump of a lattice vector.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.data import atomic_numbers

from ..core.units import BOHR_ANG

VELOCITY_KEY = "velocities_A_fs"


class TrajectoryError(ValueError):
    """A trajectory file that cannot be read; the message names the file, frame and problem."""


def read_trajectory(path, fmt: str | None = None, type_map: list[str] | dict | None = None,
                    velocity_time_unit_fs: float = 1000.0, max_frames: int | None = None) -> list[Atoms]:
    """Read the frames (the first ``max_frames`` only, if given: the complete frames before a truncated
    end stay usable). ``fmt``: 'lammps-dump', 'ipi-xyz', 'extxyz' (or any ASE format); guessed from the
    file when None. ``type_map``: element of each LAMMPS atom type (list: type 1 first) when the dump has no
    ``element`` column. ``velocity_time_unit_fs``: the time unit of LAMMPS dump velocities in fs (1000 for
    ``units metal``, Å/ps, the default; 1 for ``units real``, Å/fs)."""
    path = Path(path)
    if not path.exists():
        raise TrajectoryError(f"{path}: no such trajectory file")
    fmt = fmt or guess_format(path)
    if fmt == "lammps-dump":
        return read_lammps_dump(path, type_map, velocity_time_unit_fs, max_frames)
    if fmt == "ipi-xyz":
        return read_ipi_xyz(path, max_frames)
    import ase.io

    try:
        frames = ase.io.read(path, index=slice(0, max_frames), format=None if fmt == "auto" else fmt)
    except Exception as exc:  # ASE raises many kinds
        raise TrajectoryError(f"{path}: cannot read as {fmt}: {exc}") from None
    import ase.units

    for a in frames:
        if a.has("momenta"):  # ASE velocities are Å per ASE time unit; ase.units.fs of those make 1 fs
            a.arrays[VELOCITY_KEY] = a.get_velocities() * ase.units.fs
    return frames


def guess_format(path: Path) -> str:
    with open(path) as fh:
        head = [fh.readline() for _ in range(2)]
    if head[0].startswith("ITEM:"):
        return "lammps-dump"
    if len(head) > 1 and head[1].lstrip().startswith("# CELL"):
        return "ipi-xyz"
    if path.suffix in (".xyz", ".extxyz"):
        return "extxyz"
    return "auto"


# ---- LAMMPS dump -----------------------------------------------------------------------------
def _dump_cell(lines: list[str], header: str) -> tuple[np.ndarray, np.ndarray]:
    """Cell vectors (rows) and origin from the BOX BOUNDS lines (orthogonal or triclinic)."""
    b = np.array([[float(x) for x in ln.split()] for ln in lines])
    if "xy" in header:  # triclinic: bounds are of the bounding box
        xy, xz, yz = b[0, 2], b[1, 2], b[2, 2]
        xlo = b[0, 0] - min(0.0, xy, xz, xy + xz)
        xhi = b[0, 1] - max(0.0, xy, xz, xy + xz)
        ylo = b[1, 0] - min(0.0, yz)
        yhi = b[1, 1] - max(0.0, yz)
        zlo, zhi = b[2, 0], b[2, 1]
        cell = np.array([[xhi - xlo, 0, 0], [xy, yhi - ylo, 0], [xz, yz, zhi - zlo]])
        return cell, np.array([xlo, ylo, zlo])
    return np.diag(b[:, 1] - b[:, 0]), b[:, 0]


def read_lammps_dump(path, type_map=None, velocity_time_unit_fs: float = 1000.0,
                     max_frames: int | None = None) -> list[Atoms]:
    """LAMMPS ``dump custom`` text: needs id and (element or type) and one of xu/x/xs position columns
    (x with ix iy iz image flags is unwrapped); velocities vx vy vz are kept."""
    path = Path(path)
    frames = []
    with open(path) as fh:
        lines = fh.read().splitlines()
    i, n = 0, len(lines)
    while i < n and (max_frames is None or len(frames) < max_frames):
        if not lines[i].strip():
            i += 1
            continue
        where = f"{path}: frame {len(frames)} (line {i + 1})"
        try:
            if not lines[i].startswith("ITEM: TIMESTEP"):
                raise TrajectoryError(f"{where}: expected 'ITEM: TIMESTEP', found {lines[i][:40]!r}")
            step = int(lines[i + 1])
            if not lines[i + 2].startswith("ITEM: NUMBER OF ATOMS"):
                raise TrajectoryError(f"{where}: expected 'ITEM: NUMBER OF ATOMS'")
            natoms = int(lines[i + 3])
            box_header = lines[i + 4]
            if not box_header.startswith("ITEM: BOX BOUNDS"):
                raise TrajectoryError(f"{where}: expected 'ITEM: BOX BOUNDS'")
            cell, origin = _dump_cell(lines[i + 5 : i + 8], box_header)
            pbc = [t == "pp" for t in box_header.split()[-3:]] if len(box_header.split()) >= 6 else [True] * 3
            cols = lines[i + 8].split()
            if cols[:2] != ["ITEM:", "ATOMS"]:
                raise TrajectoryError(f"{where}: expected 'ITEM: ATOMS ...'")
            cols = cols[2:]
            body = lines[i + 9 : i + 9 + natoms]
            if len(body) < natoms:
                raise TrajectoryError(f"{where}: file ends after {len(body)} of {natoms} atom lines (truncated dump?)")
            table = [ln.split() for ln in body]
            if any(len(r) != len(cols) for r in table):
                raise TrajectoryError(f"{where}: an atom line does not have the {len(cols)} columns {cols}")
        except (ValueError, IndexError) as exc:
            if isinstance(exc, TrajectoryError):
                raise
            raise TrajectoryError(f"{where}: malformed dump header ({exc})") from None
        frames.append(_dump_frame(table, cols, cell, origin, pbc, type_map, velocity_time_unit_fs, step, where))
        i += 9 + natoms
    if not frames:
        raise TrajectoryError(f"{path}: no frames")
    return frames


def _dump_frame(table, cols, cell, origin, pbc, type_map, vel_factor, step, where) -> Atoms:
    c = {name: k for k, name in enumerate(cols)}
    arr = np.array(table, dtype=object)
    ids = arr[:, c["id"]].astype(int) if "id" in c else np.arange(1, len(arr) + 1)
    uniq, counts = np.unique(ids, return_counts=True)
    if np.any(counts > 1):
        raise TrajectoryError(f"{where}: atom id(s) {uniq[counts > 1][:5].tolist()} appear more than once")
    order = np.argsort(ids, kind="stable")
    arr = arr[order]
    if "element" in c:
        symbols = list(arr[:, c["element"]])
    elif "type" in c:
        types = arr[:, c["type"]].astype(int)
        if type_map is None:
            raise TrajectoryError(f"{where}: the dump has atom types but no 'element' column; give a type map "
                                  "(e.g. type_map: [Si])")
        tm = type_map if isinstance(type_map, dict) else {k + 1: el for k, el in enumerate(type_map)}
        missing = sorted(set(types) - set(tm))
        if missing:
            raise TrajectoryError(f"{where}: atom types {missing} are not in the type map {tm}")
        symbols = [tm[t] for t in types]
    else:
        raise TrajectoryError(f"{where}: the dump needs an 'element' or 'type' column")
    unknown = sorted({s for s in symbols if s not in atomic_numbers})
    if unknown:
        raise TrajectoryError(f"{where}: unknown element(s) {unknown}")
    fl = lambda names: arr[:, [c[k] for k in names]].astype(float)  # noqa: E731
    if all(k in c for k in ("xu", "yu", "zu")):
        pos = fl(("xu", "yu", "zu"))
    elif all(k in c for k in ("x", "y", "z")):
        pos = fl(("x", "y", "z"))
        if all(k in c for k in ("ix", "iy", "iz")):
            pos = pos + fl(("ix", "iy", "iz")) @ cell
    elif all(k in c for k in ("xs", "ys", "zs")):
        pos = fl(("xs", "ys", "zs")) @ cell + origin
    else:
        raise TrajectoryError(f"{where}: no position columns (xu yu zu, x y z or xs ys zs) in {cols}")
    if not np.all(np.isfinite(pos)):
        raise TrajectoryError(f"{where}: positions contain NaN/inf")
    atoms = Atoms(symbols, positions=pos - origin, cell=cell, pbc=pbc)
    atoms.info["timestep"] = step
    if all(k in c for k in ("vx", "vy", "vz")):
        atoms.arrays[VELOCITY_KEY] = fl(("vx", "vy", "vz")) / vel_factor
    return atoms


# ---- i-PI xyz --------------------------------------------------------------------------------
_IPI_UNIT = {"angstrom": 1.0, "atomic_unit": BOHR_ANG, "bohr": BOHR_ANG, "ase": 1.0, "nanometer": 10.0}


def _ipi_cell(comment: str, where: str) -> tuple[np.ndarray, float, dict]:
    units = dict(re.findall(r"(\w+)\{(\w+)\}", comment))
    for key, u in units.items():
        if u not in _IPI_UNIT:
            raise TrajectoryError(f"{where}: unknown unit {key}{{{u}}}")
    cell_f = _IPI_UNIT[units.get("cell", "atomic_unit")]
    m = re.search(r"CELL\((abcABC|GENH|H)\):\s*([-\d.eE+\s]+?)\s+(?:Step|Bead|\w+\{|$)", comment)
    if not m:
        raise TrajectoryError(f"{where}: i-PI comment line without a CELL(...) field: {comment[:60]!r}")
    vals = np.array(m.group(2).split(), float)
    if m.group(1) == "abcABC":
        from ase.geometry import cellpar_to_cell

        cell = cellpar_to_cell(np.concatenate([vals[:3] * cell_f, vals[3:6]]))
    else:  # GENH / H: the 3×3 matrix with lattice vectors as columns (i-PI convention), row-major
        cell = vals[:9].reshape(3, 3).T * cell_f
    extra = {"step": int(re.search(r"Step:\s*(\d+)", comment).group(1)) if "Step:" in comment else None}
    return cell, _IPI_UNIT[next((u for k, u in units.items() if k != "cell"), "atomic_unit")], extra


def read_ipi_xyz(path, max_frames: int | None = None) -> list[Atoms]:
    """i-PI ``<trajectory format='xyz'>`` / ``<properties>``-free position output (one bead per file)."""
    path = Path(path)
    lines = path.read_text().splitlines()
    frames, i = [], 0
    while i < len(lines) and (max_frames is None or len(frames) < max_frames):
        if not lines[i].strip():
            i += 1
            continue
        where = f"{path}: frame {len(frames)} (line {i + 1})"
        try:
            natoms = int(lines[i])
        except ValueError:
            raise TrajectoryError(f"{where}: expected an atom count, found {lines[i][:40]!r}") from None
        if i + 2 + natoms > len(lines):
            raise TrajectoryError(f"{where}: file ends inside a frame (truncated?)")
        cell, pos_f, extra = _ipi_cell(lines[i + 1], where)
        rows = [ln.split() for ln in lines[i + 2 : i + 2 + natoms]]
        try:
            symbols = [r[0] for r in rows]
            pos = np.array([[float(x) for x in r[1:4]] for r in rows]) * pos_f
        except (ValueError, IndexError):
            raise TrajectoryError(f"{where}: malformed atom line") from None
        unknown = sorted({s for s in symbols if s not in atomic_numbers})
        if unknown:
            raise TrajectoryError(f"{where}: unknown element(s) {unknown}")
        atoms = Atoms(symbols, positions=pos, cell=cell, pbc=True)
        if extra["step"] is not None:
            atoms.info["timestep"] = extra["step"]
        frames.append(atoms)
        i += 2 + natoms
    if not frames:
        raise TrajectoryError(f"{path}: no frames")
    return frames


# ---- continuity --------------------------------------------------------------------------------
def unwrap(frames: list[Atoms]) -> list[Atoms]:
    """Copies of ``frames`` whose positions move continuously: every atom takes the minimum-image
    displacement from the previous frame (the cell of the later frame). Idempotent on unwrapped input."""
    out = [frames[0].copy()]
    for k, a in enumerate(frames[1:], start=1):
        if len(a) != len(out[-1]):
            raise TrajectoryError(f"frame {k} has {len(a)} atoms, frame {k - 1} {len(out[-1])}: a trajectory must "
                                  "keep its atoms")
        changed = np.flatnonzero(a.numbers != out[-1].numbers)
        if len(changed):
            i = int(changed[0])
            raise TrajectoryError(f"frame {k}: atom {i} is {a[i].symbol}, in frame {k - 1} {out[-1][i].symbol} "
                                  f"({len(changed)} atom(s) changed element): a trajectory must keep its atoms "
                                  "and their order")
        b = a.copy()
        if np.any(a.pbc):
            d = a.positions - out[-1].positions
            frac = np.linalg.solve(a.cell.array.T, d.T).T
            frac -= np.round(frac) * a.pbc
            b.positions = out[-1].positions + frac @ a.cell.array
        out.append(b)
    return out


def remove_drift(frames: list[Atoms]) -> list[Atoms]:
    """Copies with the centre-of-mass displacement from the first frame removed.

    A uniform translation carries the electrons along with the nuclei; the overlap of rigidly translated real
    orbitals would instead give a spurious coupling d_ij = −v·<ψ_i|∇ψ_j> (the electron-translation-factor
    problem of the Hammes-Schiffer–Tully formula), so the couplings post-processor removes the drift."""
    m = frames[0].get_masses()
    com0 = m @ frames[0].positions / m.sum()
    out = []
    for a in frames:
        b = a.copy()
        b.positions -= m @ a.positions / m.sum() - com0
        out.append(b)
    return out



def check_spacing(frames: list[Atoms], where: str = "trajectory") -> int | None:
    """The common MD-step spacing of ``frames`` (from the TIMESTEP of each, where the file has one), or None
    when the file records no steps. Uneven or missing steps raise, naming the frames: a couplings job would
    otherwise divide every overlap by the same dt and put the wrong time on the axis."""
    steps = [a.info.get("timestep") for a in frames]
    if len(frames) < 2 or any(s is None for s in steps):
        return None
    gaps = np.diff(np.asarray(steps, dtype=np.int64))
    common = int(np.bincount(np.abs(gaps)).argmax()) if len(gaps) else 0
    bad = np.flatnonzero(gaps != common)
    if common <= 0 or len(bad):
        k = int(bad[0]) if len(bad) else 0
        raise TrajectoryError(
            f"{where}: frames are not evenly spaced in MD steps: frame {k} is step {steps[k]} and frame {k + 1} step "
            f"{steps[k + 1]}, where most consecutive frames are {common} apart ({len(bad)} uneven gap(s); "
            f"steps {steps[:6]}{' ...' if len(steps) > 6 else ''}). Select an evenly spaced part (frames: start/stop/"
            "step) or give frames.timestep_spacing to keep only frames on that grid")
    return common


def check_fixed_cell(frames: list[Atoms], where: str = "trajectory", tol_ang: float = 1e-6) -> None:
    """Couplings are computed at fixed cell (Γ-point overlaps between two geometries need one lattice):
    a cell that changes (NPT, deforming box) is refused, naming the first frame where it does."""
    ref = frames[0].cell.array
    for k, a in enumerate(frames):
        dev = float(np.abs(a.cell.array - ref).max())
        if dev > tol_ang:
            raise TrajectoryError(f"{where}: the cell of frame {k} differs from frame 0's by {dev:.3g} Å (an NPT "
                                  "or deforming-box run?): couplings need a fixed cell (run the NVE/NVT "
                                  "production MD at fixed volume)")
