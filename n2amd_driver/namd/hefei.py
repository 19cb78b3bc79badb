"""Hefei-NAMD files: ``EIGTXT``, ``NATXT``, ``INICON``, ``DEPHTIME`` and the namelist ``inp``.

- ``EIGTXT``: one line per snapshot, band energies (eV), bands BMIN..BMAX.
- ``NATXT``: one line per snapshot, nb² values row-major: the **undivided** numerator
  <i(t)|j(t+dt)> − <j(t)|i(t+dt)>; Hefei-NAMD divides by 2·POTIM to get d_ij in fs⁻¹.
- ``INICON``: one line per sample, "NAMDTINI INIBAND" (1-based time step, absolute band index).
- ``DEPHTIME``: nb×nb pure-dephasing times in fs (zero diagonal).
- ``inp``: ``&NAMDPARA ... /`` with BMIN, BMAX, NSW, POTIM (fs), TEMP (K), NSAMPLE, NAMDTIME (steps),
  NELM, NTRAJ, LHOLE, ...
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from .series import CouplingSeries


def parse_namelist(text: str) -> dict:
    """Values of a Fortran namelist (keys upper-cased; .TRUE./.FALSE., numbers with d/D exponents, strings)."""
    body = re.search(r"&\w+(.*?)/\s*$", text, flags=re.S | re.M)
    if body is None:
        raise ValueError("no '&NAME ... /' namelist found")
    out = {}
    for key, raw in re.findall(r"(\w+)\s*=\s*('[^']*'|\"[^\"]*\"|[^,\n!]+)", body.group(1)):
        v = raw.strip().rstrip(",").strip()
        if v[:1] in "'\"":
            val = v[1:-1]
        elif v.upper() in (".TRUE.", "T", ".T."):
            val = True
        elif v.upper() in (".FALSE.", "F", ".F."):
            val = False
        else:
            num = v.lower().replace("d", "e")
            try:
                val = int(num)
            except ValueError:
                try:
                    val = float(num)
                except ValueError:
                    val = v
        out[key.upper()] = val
    return out


def write_namelist(path, values: dict, name: str = "NAMDPARA") -> None:
    def fmt(v):
        if isinstance(v, bool):
            return ".TRUE." if v else ".FALSE."
        if isinstance(v, str):
            return f"'{v}'"
        return repr(v)

    lines = [f"&{name}"] + [f"  {k:<10s} = {fmt(v)}" for k, v in values.items()] + ["/"]
    Path(path).write_text("\n".join(lines) + "\n")


def _read_table(path: Path, what: str) -> np.ndarray:
    try:
        data = np.loadtxt(path, ndmin=2)
    except ValueError as exc:
        raise ValueError(f"{path}: malformed {what}: {exc}") from None
    if not np.all(np.isfinite(data)):
        raise ValueError(f"{path}: {what} contains NaN/inf")
    return data


def read_hefei(folder, potim_fs: float | None = None) -> tuple[CouplingSeries, dict]:
    """Read ``EIGTXT`` + ``NATXT`` (and ``inp`` for POTIM/BMIN if present) from a Hefei-NAMD run folder."""
    folder = Path(folder)
    inp = parse_namelist((folder / "inp").read_text()) if (folder / "inp").exists() else {}
    potim = potim_fs if potim_fs is not None else inp.get("POTIM")
    if potim is None:
        raise ValueError(f"{folder}: no 'inp' with POTIM and no time step given")
    eig = _read_table(folder / "EIGTXT", "EIGTXT")
    na = _read_table(folder / "NATXT", "NATXT")
    nb = eig.shape[1]
    if na.shape[1] != nb * nb:
        raise ValueError(f"{folder / 'NATXT'}: {na.shape[1]} values per line, expected {nb}² = {nb * nb} "
                         f"for the {nb} bands of EIGTXT")
    nsw = inp.get("NSW")
    if nsw is not None:
        eig, na = eig[: int(nsw)], na[: int(nsw)]
    n_e, n_na = len(eig), len(na)
    if n_na not in (n_e, n_e - 1):
        raise ValueError(f"{folder}: EIGTXT has {n_e} lines but NATXT {n_na} (need equal or one fewer)")
    d = na.reshape(n_na, nb, nb) / (2.0 * float(potim))
    bmin = int(inp.get("BMIN", 1))
    series = CouplingSeries(eig, d, float(potim), bands=np.arange(bmin, bmin + nb),
                            meta={"source": f"Hefei-NAMD files in {folder}"})
    return series, inp


def write_hefei(folder, series: CouplingSeries, *, bmin: int = 1, inicon=None, extra_inp: dict | None = None) -> None:
    """Write ``EIGTXT``, ``NATXT`` (undivided numerator 2·dt·d), ``INICON`` and ``inp`` for Hefei-NAMD."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    n = series.nstates
    np.savetxt(folder / "EIGTXT", series.energies, fmt="%.10f")
    np.savetxt(folder / "NATXT", (2.0 * series.dt_fs * series.nac).reshape(series.nsteps, n * n), fmt="%.12e")
    inp = {"BMIN": bmin, "BMAX": bmin + n - 1, "NSW": series.energies.shape[0], "POTIM": series.dt_fs}
    if inicon is not None:
        lines = [f"{int(t)} {int(b)}" for t, b in inicon]
        (folder / "INICON").write_text("\n".join(lines) + "\n")
        inp["NSAMPLE"] = len(lines)
    inp.update(extra_inp or {})
    write_namelist(folder / "inp", inp)


def read_inicon(path) -> np.ndarray:
    """(nsample, 2) int array of (NAMDTINI, INIBAND)."""
    data = np.loadtxt(path, ndmin=2, dtype=float)
    if data.shape[1] < 2:
        raise ValueError(f"{path}: INICON lines need 'NAMDTINI INIBAND'")
    return data[:, :2].astype(int)


def read_dephtime(path) -> np.ndarray:
    return _read_table(Path(path), "DEPHTIME")
