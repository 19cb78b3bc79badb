"""Hefei-NAMD files: ``EIGTXT``, ``NATXT``, ``INICON``, ``DEPHTIME``, the namelist ``inp`` and ``SHPROP``.

- ``EIGTXT``: one line per snapshot, band energies (eV), bands BMIN..BMAX.
- ``NATXT``: one line per snapshot, nb² values row-major: the **undivided** numerator
  <i(t)|j(t+dt)> − <j(t)|i(t+dt)>; Hefei-NAMD divides by 2·POTIM to get d_ij in fs⁻¹. Real numbers, or
  Fortran complex literals ``(re,im)`` as the original src/dish reads them (imaginary parts must vanish).
- ``INICON``: one line per sample, "NAMDTINI INIBAND": 1-based snapshot and band, the band absolute
  (BMIN..BMAX) or, as Hefei-NAMD-DEV also accepts, relative to BMIN (1..nb) when the first line's band is
  below BMIN.
- ``DEPHTIME``: nb×nb pure-dephasing times in fs (zero diagonal).
- ``inp``: the Fortran namelist ``&NAMDPARA ... /`` (read with f90nml: commas or spaces, ``&END``, ``!``
  comments, ``d`` exponents). :func:`hefei_settings` says what each key means here; keys with no
  counterpart, and values this package cannot honour, are refused by name.
- ``SHPROP.<NAMDTINI>`` (written): time (fs), carrier energy (eV), population of each state, one row per
  recorded time. Hefei-NAMD-DEV writes NAMDTIME rows labelled POTIM, 2·POTIM, ..., the first being the
  initial condition; here the same rows are labelled 0, POTIM, ... (the t = 0 row is the initial condition).
"""
from __future__ import annotations

import io
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .series import CouplingSeries

#: Hefei-NAMD-DEV's &NAMDPARA keys and its defaults (None: no default, the key must be given when used)
DEV_DEFAULTS = {
    "BMIN": None, "BMAX": None, "NSW": None, "POTIM": 1.0, "TEMP": 300.0, "NSAMPLE": None, "NAMDTIME": 0,
    "NELM": 10, "NTRAJ": 1000, "LHOLE": False, "LSHP": True, "ALGO": "DISH", "ALGO_INT": 0, "LCPTXT": True,
    "LSPACE": False, "NACBASIS": 100, "NACELE": 1, "NPAR": 1, "LBINOUT": False, "RUNDIR": "run",
    "TBINIT": "INICON", "DIINIT": "DEPHTIME", "SPINIT": "ACSPACE", "DEBUGLEVEL": "I",
}
#: keys that change nothing a run computes (told in the log, not refused)
NO_EFFECT = {
    "NPAR": "DEV's grouping of MPI ranks over samples; here `mpirun -n N` splits initial times and trajectories",
    "DEBUGLEVEL": "DEV's log verbosity",
    "RUNDIR": "DEV's scratch folder name; outputs go to the hop config's `output`",
}


def parse_namelist(text: str, where: str = "inp") -> dict:
    """The &NAMDPARA group of a Fortran namelist, keys upper-cased (f90nml: any valid namelist syntax)."""
    import f90nml

    try:
        nml = f90nml.reads(text)
    except Exception as exc:  # f90nml raises ValueError/StopIteration/IndexError on broken syntax
        raise ValueError(f"{where}: not a valid Fortran namelist: {exc}") from None
    groups = [g.upper() for g in nml.keys()]
    if "NAMDPARA" not in groups:
        raise ValueError(f"{where}: no &NAMDPARA group (found: {', '.join('&' + g for g in groups) or 'none'})")
    _check_tokens(text, where)
    out = {}
    for key, value in nml["namdpara"].items():
        if not re.fullmatch(r"[A-Za-z]\w*", key):
            raise ValueError(f"{where}: '{key}' is not a key name (a doubled '='?)")
        if value is None:
            raise ValueError(f"{where}: {key.upper()} has no value")
        if isinstance(value, list):
            raise ValueError(f"{where}: {key.upper()} = {value}: a single value is expected")
        out[key.upper()] = value
    return out


_VALUE = re.compile(r"""^(\d+\*)?([-+]?(\d+\.?\d*|\.\d+)([eEdD][-+]?\d+)?|\.?(T|F|TRUE|FALSE)\.?|\([^)]*\))$""",
                    re.IGNORECASE)


def _check_tokens(text: str, where: str) -> None:
    """f90nml drops a word with no '=' (``BMIN 3``) without a word: refuse any token of the &NAMDPARA group
    that is neither ``KEY =`` nor a value."""
    body = re.sub(r"'[^']*'|\"[^\"]*\"", " 0 ", text)  # strings are values
    body = re.sub(r"!.*", "", body)
    m = re.search(r"&namdpara\b(.*?)(^|\s)(/|&end\b)", body, re.IGNORECASE | re.DOTALL | re.MULTILINE)
    if not m:
        return  # f90nml found the group; an unusual terminator is its business
    rest = re.sub(r"[A-Za-z]\w*(\(\s*\d+\s*\))?\s*=", " ", m.group(1))
    for tok in re.split(r"[\s,]+", rest.strip()):
        if tok and not _VALUE.match(tok):
            raise ValueError(f"{where}: '{tok}' in &NAMDPARA is neither 'KEY = value' nor a value (a missing '='?)")


def write_namelist(path, values: dict, name: str = "NAMDPARA") -> None:
    def fmt(v):
        if isinstance(v, bool):
            return ".TRUE." if v else ".FALSE."
        if isinstance(v, str):
            return f"'{v}'"
        return repr(v)

    lines = [f"&{name}"] + [f"  {k:<10s} = {fmt(v)}" for k, v in values.items()] + ["/"]
    Path(path).write_text("\n".join(lines) + "\n")


_COMPLEX = re.compile(r"\(\s*([^,()\s]+)\s*,\s*([^,()\s]+)\s*\)")


def _read_table(path: Path, what: str, complex_ok: bool = False) -> np.ndarray:
    if not path.exists():
        raise FileNotFoundError(f"{path}: no {what} file")
    text = path.read_text()
    if complex_ok and "(" in text:
        parts = _COMPLEX.findall(text.replace("D", "e").replace("d", "e"))
        rows = [ln for ln in text.splitlines() if ln.strip()]
        try:
            z = np.array([complex(float(a), float(b)) for a, b in parts])
        except ValueError as exc:
            raise ValueError(f"{path}: malformed complex {what}: {exc}") from None
        if len(z) % max(len(rows), 1):
            raise ValueError(f"{path}: {len(z)} complex values do not fill {len(rows)} lines evenly")
        scale = max(float(np.abs(z.real).max(initial=0.0)), 1e-300)
        if np.abs(z.imag).max(initial=0.0) > 1e-8 * scale:
            raise ValueError(f"{path}: {what} has imaginary parts up to {np.abs(z.imag).max():.3g} (Γ-point couplings "
                             "are real; complex ones are not supported)")
        data = z.real.reshape(len(rows), -1)
    else:
        try:
            data = np.loadtxt(io.StringIO(text), ndmin=2)
        except ValueError as exc:
            raise ValueError(f"{path}: malformed {what}: {exc}") from None
    if not np.all(np.isfinite(data)):
        raise ValueError(f"{path}: {what} contains NaN/inf")
    return data


def read_inp(folder) -> dict:
    """The keys given in ``folder/inp`` (upper-cased), or {} when there is no inp."""
    path = Path(folder) / "inp"
    return parse_namelist(path.read_text(), str(path)) if path.exists() else {}


def read_hefei(folder, potim_fs: float | None = None) -> tuple[CouplingSeries, dict]:
    """``EIGTXT`` + ``NATXT`` of a Hefei-NAMD run folder, cut to the inp's NSW snapshots, with d = NATXT/(2·POTIM)
    and the bands numbered from BMIN. Returns the series and the keys given in ``inp``."""
    folder = Path(folder)
    inp = read_inp(folder)
    potim = potim_fs if potim_fs is not None else inp.get("POTIM", DEV_DEFAULTS["POTIM"] if inp else None)
    if potim is None:
        raise ValueError(f"{folder}: no 'inp' with POTIM and no time step given")
    if not isinstance(potim, (int, float)) or isinstance(potim, bool) or potim <= 0:
        raise ValueError(f"{folder / 'inp'}: POTIM = {potim!r}: a positive time step in fs is expected")
    eig = _read_table(folder / "EIGTXT", "EIGTXT")
    na = _read_table(folder / "NATXT", "NATXT", complex_ok=True)
    nb = eig.shape[1]
    if na.shape[1] != nb * nb:
        raise ValueError(f"{folder / 'NATXT'}: {na.shape[1]} values per line, expected {nb}² = {nb * nb} "
                         f"for the {nb} bands of EIGTXT")
    bmin = _int(inp, "BMIN", 1, folder)
    if "BMAX" in inp and _int(inp, "BMAX", None, folder) - bmin + 1 != nb:
        raise ValueError(f"{folder / 'inp'}: BMIN..BMAX = {bmin}..{inp['BMAX']} is {inp['BMAX'] - bmin + 1} bands, "
                         f"EIGTXT has {nb}")
    if "NSW" in inp:
        nsw = _int(inp, "NSW", None, folder)
        if nsw < 2:
            raise ValueError(f"{folder / 'inp'}: NSW = {nsw}: at least 2 snapshots are needed")
        for name, table in (("EIGTXT", eig), ("NATXT", na)):
            if len(table) < nsw - (name == "NATXT"):
                raise ValueError(f"{folder / name}: {len(table)} lines, fewer than NSW = {nsw}")
        eig, na = eig[:nsw], na[:nsw]
    n_e, n_na = len(eig), len(na)
    if n_na not in (n_e, n_e - 1):
        raise ValueError(f"{folder}: EIGTXT has {n_e} lines but NATXT {n_na} (need equal or one fewer)")
    d = na.reshape(n_na, nb, nb) / (2.0 * float(potim))
    series = CouplingSeries(eig, d, float(potim), bands=np.arange(bmin, bmin + nb),
                            meta={"source": f"Hefei-NAMD files in {folder}"})
    return series, inp


def _int(inp: dict, key: str, default, folder) -> int:
    v = inp.get(key, default)
    if isinstance(v, bool) or not isinstance(v, int):
        raise ValueError(f"{Path(folder) / 'inp'}: {key} = {v!r}: an integer is expected")
    return v


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


def read_inicon(path, nsample: int | None = None) -> np.ndarray:
    """(nsample, 2) int array of (NAMDTINI, INIBAND): the first ``nsample`` lines (all when None)."""
    path = Path(path)
    try:
        data = np.loadtxt(path, ndmin=2, dtype=float)
    except ValueError as exc:
        raise ValueError(f"{path}: malformed INICON: {exc}") from None
    if data.size == 0 or data.shape[1] < 2:
        raise ValueError(f"{path}: INICON lines need 'NAMDTINI INIBAND'")
    if nsample is not None:
        if nsample > len(data):
            raise ValueError(f"{path}: NSAMPLE = {nsample} but INICON has only {len(data)} line(s)")
        data = data[:nsample]
    if np.any(data[:, :2] != np.round(data[:, :2])):
        raise ValueError(f"{path}: NAMDTINI and INIBAND must be integers")
    return data[:, :2].astype(int)


def read_dephtime(path) -> np.ndarray:
    return _read_table(Path(path), "DEPHTIME")


def write_shprop(path, t_fs: np.ndarray, energy_eV: np.ndarray, populations: np.ndarray) -> None:
    """``SHPROP.<NAMDTINI>``: time (fs), carrier energy (eV), populations; DEV's column widths."""
    fmt = ["%13.2f", "%11.6f"] + ["%11.6f"] * populations.shape[1]
    np.savetxt(path, np.column_stack([t_fs, energy_eV, populations]), fmt=fmt, delimiter="")


@dataclass
class HefeiSettings:
    """What a Hefei-NAMD folder's ``inp`` asks for, in the hop config's keys and units. ``values`` holds the
    settings it gives (DEV's defaults where the key is absent), ``given`` which came from the file, ``notes``
    lines for the run's log."""

    values: dict
    given: dict
    inicon: np.ndarray | None = None  # (MD step, window state), 0-based
    dephasing: str | None = None  # DEPHTIME path, when present
    notes: list = field(default_factory=list)


def hefei_settings(folder, inp: dict, series: CouplingSeries) -> HefeiSettings:
    """The meaning of ``inp`` here: NTRAJ, NAMDTIME, NELM, TEMP, ALGO, LHOLE, NSAMPLE + INICON (TBINIT),
    DEPHTIME (DIINIT) map onto hop settings (NAMDTIME = N means N − 1 steps, as in DEV). Unknown keys and
    DEV options this package does not have (LSPACE, LBINOUT, LCPTXT = F, LSHP = F, Euler integrators) stop
    the run with the key named."""
    folder = Path(folder)
    where = folder / "inp"
    unknown = sorted(set(inp) - set(DEV_DEFAULTS))
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {', '.join(unknown)} (Hefei-NAMD-DEV's &NAMDPARA keys: "
                         f"{', '.join(DEV_DEFAULTS)})")
    get = lambda k: inp.get(k, DEV_DEFAULTS[k])
    refuse = {"LSPACE": (True, "active-space (many-electron) dynamics is not provided"),
              "LBINOUT": (True, "binary outputs are not provided; SHPROP text files are (hop config `shprop: true`)"),
              "LCPTXT": (False, "COUPCAR binary couplings are not read; give EIGTXT and NATXT"),
              "LSHP": (False, "runs without surface hopping are not provided")}
    for key, (bad, why) in refuse.items():
        if not isinstance(get(key), bool):
            raise ValueError(f"{where}: {key} = {get(key)!r}: .TRUE. or .FALSE. is expected")
        if get(key) is bad:
            raise ValueError(f"{where}: {key} = {'.TRUE.' if bad else '.FALSE.'}: {why}")
    algo = str(get("ALGO")).upper()
    if algo not in ("DISH", "FSSH"):
        raise ValueError(f"{where}: ALGO = {get('ALGO')!r}: DISH or FSSH is expected")
    if get("ALGO_INT") not in (0, 2):
        raise ValueError(f"{where}: ALGO_INT = {get('ALGO_INT')!r}: only 0 (Trotter) and 2 (diagonalisation) are "
                         "accepted, both integrated here with exact sub-step exponentials; DEV's Euler "
                         "integrators (10, 11) are not provided")
    ints = {"NTRAJ": 1, "NELM": 1, "NAMDTIME": 2, "NSAMPLE": 1}
    for key, low in ints.items():
        if key not in inp:
            continue
        v = inp[key]
        if isinstance(v, bool) or not isinstance(v, int) or v < low:
            raise ValueError(f"{where}: {key} = {v!r}: an integer ≥ {low} is expected")
    temp = get("TEMP")
    if isinstance(temp, bool) or not isinstance(temp, (int, float)) or temp <= 0:
        raise ValueError(f"{where}: TEMP = {temp!r}: a positive temperature in K is expected")
    if not isinstance(get("LHOLE"), bool):
        raise ValueError(f"{where}: LHOLE = {get('LHOLE')!r}: .TRUE. or .FALSE. is expected")
    values = {"method": algo.lower(), "carrier": "hole" if get("LHOLE") else "electron",
              "temperature_K": float(temp), "nelm": int(get("NELM")), "ntraj": int(get("NTRAJ"))}
    given = {k: v for k, v in {"method": "ALGO", "carrier": "LHOLE", "temperature_K": "TEMP", "nelm": "NELM",
                               "ntraj": "NTRAJ"}.items() if v in inp}
    if "NAMDTIME" in inp:
        values["namdtime_fs"] = (int(inp["NAMDTIME"]) - 1) * series.dt_fs  # N records, N − 1 steps
        given["namdtime_fs"] = "NAMDTIME"
    notes = [f"inp: {k} = {inp[k]!r} has no effect here ({why})" for k, why in NO_EFFECT.items() if k in inp]
    for k in ("NACBASIS", "NACELE", "SPINIT"):
        if k in inp:
            notes.append(f"inp: {k} = {inp[k]!r} has no effect here (it only matters with LSPACE = .TRUE.)")
    out = HefeiSettings(values, given, notes=notes)
    tb = folder / str(get("TBINIT"))
    if tb.exists():
        out.inicon = inicon_conditions(tb, series, int(inp.get("BMIN", 1)), inp.get("NSAMPLE"), out.notes)
        given["initial"] = "INICON" + (" with NSAMPLE" if "NSAMPLE" in inp else "")
    elif "TBINIT" in inp or "NSAMPLE" in inp:
        raise FileNotFoundError(f"{where}: NSAMPLE/TBINIT ask for initial conditions, but {tb} does not exist")
    di = folder / str(get("DIINIT"))
    if di.exists():
        out.dephasing = str(di)
        given["dephasing"] = di.name
    elif "DIINIT" in inp:
        raise FileNotFoundError(f"{where}: DIINIT = {inp['DIINIT']!r}, but {di} does not exist")
    return out


def inicon_conditions(path: Path, series: CouplingSeries, bmin: int, nsample: int | None = None,
                      notes: list | None = None) -> np.ndarray:
    """(MD step, window state) of the first NSAMPLE INICON lines, 0-based. INIBAND is absolute (BMIN..BMAX),
    or relative (1..nb) when the first line's band is below BMIN, as in Hefei-NAMD-DEV. A NAMDTINI or
    INIBAND outside the run is refused with the file, the line and Hefei-NAMD's own 1-based numbers."""
    raw = read_inicon(path, nsample)
    M, n = series.nsteps, series.nstates
    relative = bmin > 1 and raw[0, 1] < bmin
    lo = 1 if relative else bmin
    if relative and notes is not None:
        notes.append(f"{path}: INIBAND read relative to BMIN = {bmin} (the first line's band {raw[0, 1]} is below it)")
    for k, (t, b) in enumerate(raw, start=1):
        if not 1 <= t <= M:
            raise ValueError(f"{path}: line {k}: NAMDTINI {t} is outside the {M} steps of EIGTXT/NATXT (1..{M})")
        if not lo <= b < lo + n:
            what = (f"the window (relative INIBAND 1..{n})" if relative else
                    f"the bands of EIGTXT (BMIN..BMAX = {bmin}..{bmin + n - 1})")
            raise ValueError(f"{path}: line {k}: INIBAND {b} is outside {what}")
    return np.column_stack([raw[:, 0] - 1, raw[:, 1] - lo])
