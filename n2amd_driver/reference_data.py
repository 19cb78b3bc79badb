"""``n2amd data generate``: sample configurations, label them with a reference engine, in parallel,
resumably, into one HDF5 dataset.

The job first writes every sampled structure to the file (status "pending"), then labels pending
frames in a pool of worker processes; each result is written and flushed as soon as it arrives.
Re-running the same command on the same file skips finished frames (and, with ``retry_failed``,
retries failed ones) — an interrupted job loses at most the structures in flight.
"""
from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path

import numpy as np

from .data import h5format

def _schema():
    """The generation config: every key with its type, allowed values, range and unit (checked when loaded)."""
    from typing import Literal

    from pydantic import Field, NonNegativeFloat, PositiveFloat, PositiveInt

    from .core.config import section_base

    Section = section_base()

    class System(Section):
        elements: list[str] = Field(["Si"], min_length=1, description="chemical symbols, in prototype order (e.g. "
                                                                      "[Ga, As] for zincblende)")
        prototype: str = Field("diamond", description="ASE bulk crystal structure")
        lattice_constant: PositiveFloat = Field(5.43, description="Å, conventional cubic cell")
        cubic: bool = Field(True, description="start from the conventional cubic cell")
        supercell: list[PositiveInt] = Field([1, 1, 1], min_length=3, max_length=3,
                                             description="repetitions of that cell")
        structure: str | None = Field(None, description="or a path to any ASE-readable structure (overrides the "
                                                        "prototype)")

    class Sampling(Section):
        method: Literal["md", "ase-md", "rattle", "dataset"] = Field(
            "md", description="md (LAMMPS), ase-md (ASE Langevin with an n2amd model), rattle (random "
                              "displacements) or dataset (the frames of sampling.dataset)")
        dataset: str | None = Field(None, description="method dataset: an n2amd dataset whose structures are "
                                                      "labelled (e.g. the PBE frames, for HSE06)")
        potential: Literal["auto"] | dict = Field(
            "auto", description="md: auto (the bundled potential of the elements) or {pair_style, pair_coeff}; "
                                "ase-md: {model: FILE}")
        temperatures: list[PositiveFloat] = Field([300, 600, 900], min_length=1, description="K")
        strains: list[float] = Field([-0.02, 0.0, 0.02], min_length=1, description="isotropic linear strains")
        shear_std: NonNegativeFloat = Field(0.01, description="random symmetric shear strain per condition")
        frames_per_condition: PositiveInt = Field(4, description="snapshots per temperature × strain")
        equilibration_fs: NonNegativeFloat = Field(2000, description="fs of MD before the first snapshot")
        interval_fs: PositiveFloat = Field(200, description="fs between snapshots")
        timestep_fs: PositiveFloat = Field(1.0, description="fs, MD time step")
        rattle_std: NonNegativeFloat = Field(0.08, description="Å at 300 K (method rattle)")
        seed: int = Field(0, description="seed of the sampling")

    class Label(Section):
        engine: Literal["tblite", "pyscf"] = Field("tblite", description="reference engine")
        method: str = Field("GFN2-xTB", description="tblite: GFN1-xTB | GFN2-xTB; pyscf: PBE | HSE06 | ...")
        options: dict = Field(default_factory=dict, description="engine options (see n2amd_driver.engines)")
        matrices: bool = Field(True, description="store H and S; false for force-field data (a Γ-point Si64 "
                                                 "frame in a DZVP basis carries ~10 MB of them)")

    class Config(Section):
        system: System = Field(default_factory=System)
        sampling: Sampling = Field(default_factory=Sampling)
        label: Label = Field(default_factory=Label)
        workers: PositiveInt = Field(2, description="labelling processes (and sampling processes, one per "
                                                    "condition, for ase-md)")

    return Config


SCHEMA = _schema()
#: Documented defaults of a generation config (YAML).
DEFAULTS: dict = SCHEMA().model_dump()


def load_config(path: str | os.PathLike | None = None, overrides: dict | None = None) -> dict:
    """Defaults ← YAML file ← overrides, checked against :data:`SCHEMA` before any work."""
    from .core.config import load_validated

    return load_validated(SCHEMA, path, overrides)


def make_engine(label: dict):
    from .engines import get_engine

    return get_engine(label["engine"], method=label["method"], **(label.get("options") or {}))


@dataclass
class Summary:
    path: Path
    total: int
    done: int
    failed: int
    labelled_now: int
    seconds: float
    errors: list[str] = field(default_factory=list)


# ---- worker side ---------------------------------------------------------------------------
_ENGINE = None


def _init_worker(label: dict) -> None:
    global _ENGINE
    _ENGINE = make_engine(label)


def _label_one(i: int, arrays: dict, name: str):
    """Label one structure in a worker; exceptions are returned as text, never raised."""
    from ase import Atoms

    atoms = Atoms(numbers=arrays["numbers"], positions=arrays["positions"],
                  cell=arrays["cell"] if arrays["pbc"].any() else None, pbc=arrays["pbc"])
    try:
        labels = _ENGINE.label(atoms, name=name)
    except Exception as exc:  # reported per structure; the batch goes on
        return i, None, None, f"{type(exc).__name__}: {exc}"
    return i, labels.as_dict(), labels.fold, None


# ---- driver side ---------------------------------------------------------------------------
def _prepare(cfg: dict, output: Path, engine, progress: bool, overwrite: bool, workers: int):
    """Open (resuming) or create the output file and make sure every structure is in it."""
    desc = engine.describe()
    if output.exists() and not overwrite:
        f = h5format.open_dataset(output, "a")
        have = json.loads(f.attrs["engine"])
        if have != desc:
            f.close()
            raise h5format.DatasetError(
                f"{output}: made with different engine settings {have}; this job wants {desc} "
                "(use another output file, or --overwrite)")
        if f.attrs.get("job_complete_sampling") == 1:
            return f
    else:
        from .data.structures import build_system
        from .md.sampling import dataset_samples

        if cfg["sampling"]["method"] == "dataset":
            elements = sorted({el for s in dataset_samples(cfg["sampling"]["dataset"])
                               for el in s.atoms.get_chemical_symbols()})
        else:
            elements = sorted(set(build_system(cfg["system"]).get_chemical_symbols()))
        basis = engine.basis(elements)
        f = h5format.create_dataset(output, engine=desc, basis_json=basis.to_json(), overwrite=overwrite)
        f.attrs["config"] = json.dumps(cfg, sort_keys=True, default=str)
    from .md.sampling import sample_configurations

    samples = sample_configurations(cfg["system"], cfg["sampling"], progress=progress, workers=workers)
    existing = set(h5format.frame_ids(f, None))
    for i, s in enumerate(samples):
        if i not in existing:
            h5format.write_structure(f, i, s.atoms, s.source)
    f.attrs["job_complete_sampling"] = 1
    f.flush()
    return f


class _CtrlC:
    """Ctrl-C as a flag that the labelling loop checks after each finished frame. Python raises
    KeyboardInterrupt wherever the signal lands; inside a weakref or finaliser callback it is only printed
    ("Exception ignored") and the job runs on, so a single Ctrl-C could be lost. Installed only where
    Python's own handler is in place (a SIGINT ignored by a background shell stays ignored)."""

    def __enter__(self):
        self.hit, self.previous = False, None
        if threading.current_thread() is threading.main_thread() \
                and signal.getsignal(signal.SIGINT) is signal.default_int_handler:
            self.previous = signal.signal(signal.SIGINT, self._flag)
        return self

    def _flag(self, signum, frame):
        self.hit = True

    def check(self) -> None:
        if self.hit:
            raise KeyboardInterrupt

    def __exit__(self, *exc):
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)


def generate(cfg: dict, output: str | os.PathLike, *, workers: int | None = None, progress: bool = True,
             retry_failed: bool = False, overwrite: bool = False) -> Summary:
    """Run (or resume) a generation job; returns counts. Interrupting with Ctrl-C keeps finished frames."""
    output = Path(output)
    t0 = time.time()
    engine = make_engine(cfg["label"])
    workers = int(workers or cfg.get("workers", 1))  # the same processes sample and label
    f = _prepare(cfg, output, engine, progress, overwrite, workers)
    with _CtrlC() as ctrl_c:
        return _label_all(cfg, f, output, engine, workers, retry_failed, progress, ctrl_c, t0)


def spread_order(ids: list[int]) -> list[int]:
    """``ids`` in bit-reversed order of their rank (0, n/2, n/4, 3n/4, ...): any first part of the labelling
    covers the whole file evenly, so a long job stopped early (DFT: minutes per frame) leaves labels spread over
    all sampling conditions rather than the first few."""
    ids = sorted(ids)
    bits = max(1, (len(ids) - 1).bit_length())
    rev = lambda k: int(format(k, f"0{bits}b")[::-1], 2)
    return [ids[k] for k in sorted(range(len(ids)), key=rev)]


def _label_all(cfg: dict, f, output: Path, engine, workers: int, retry_failed: bool, progress: bool, ctrl_c: _CtrlC,
               t0: float) -> Summary:
    """Label the pending frames of the open dataset ``f`` (closed on return), writing each as it finishes."""
    from tqdm.auto import tqdm

    try:
        todo = spread_order(h5format.frame_ids(f, "pending") + (h5format.frame_ids(f, "failed") if retry_failed
                                                                 else []))
        labelled = 0
        errors: list[str] = []
        bar = tqdm(total=len(todo), desc=f"labelling ({engine.name} {engine.method})", unit="frame",
                   disable=not progress)
        names = {i: f"frame {i}" for i in todo}
        jobs = ((i, h5format.read_frame(f["frames"][h5format.frame_key(i)], h5format.STRUCTURE_KEYS)) for i in todo)

        def handle(result):
            nonlocal labelled
            i, labels, fold, err = result
            if err is None and not cfg["label"]["matrices"]:
                labels = {k: v for k, v in labels.items() if k not in ("hamiltonian", "overlap")}
            if err is None:
                h5format.write_labels(f, i, labels, fold)
                labelled += 1
            else:
                h5format.mark_failed(f, i, err)
                errors.append(err)
                bar.write(f"[n2amd] {err}", file=sys.stderr)
            bar.update(1)
            ctrl_c.check()  # after the frame is written: an interrupted job keeps every finished frame

        if workers <= 1:
            _init_worker(cfg["label"])
            for i, arrays in jobs:
                handle(_label_one(i, arrays, names[i]))
        else:
            _run_pool(cfg["label"], jobs, names, workers, handle)
        bar.close()
        done = len(h5format.frame_ids(f, "done"))
        failed = len(h5format.frame_ids(f, "failed"))
        total = len(h5format.frame_ids(f, None))
    finally:
        f.close()
    return Summary(output, total, done, failed, labelled, time.time() - t0, errors)


def _run_pool(label: dict, jobs, names: dict, workers: int, handle) -> None:
    """Label in ``workers`` processes, at most 2×workers structures in flight; BLAS threads split evenly."""
    threads = str(max(1, (os.cpu_count() or 1) // workers))
    saved = {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}
    os.environ.update({k: threads for k in saved})
    try:
        with ProcessPoolExecutor(workers, mp_context=get_context("spawn"), initializer=_init_worker,
                                 initargs=(label,)) as pool:
            pending = set()
            try:
                for i, arrays in jobs:
                    pending.add(pool.submit(_label_one, i, arrays, names[i]))
                    if len(pending) >= 2 * workers:
                        finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                        for fut in finished:
                            handle(fut.result())
                for fut in wait(pending).done:
                    handle(fut.result())
            except BaseException:
                pool.shutdown(wait=False, cancel_futures=True)
                raise
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def dataset_info(path: str | os.PathLike) -> str:
    """Human-readable summary of a dataset file (``n2amd data info``)."""
    from ase.data import chemical_symbols

    from .orbitals.conventions import Basis

    path = Path(path)
    with h5format.open_dataset(path) as f:
        engine = json.loads(f.attrs["engine"])
        all_ids = h5format.frame_ids(f, None)
        status = {s: len(h5format.frame_ids(f, s)) for s in ("done", "pending", "failed")}
        natoms, energies, elements, keys, folds, fmax = [], [], set(), set(), set(), []
        errors = []
        for i in all_ids:
            g = f["frames"][h5format.frame_key(i)]
            z = g["numbers"][()]
            natoms.append(len(z))
            elements.update(chemical_symbols[int(x)] for x in np.unique(z))
            if g.attrs.get("status") == "done":
                keys.update(k for k in g.keys() if k in h5format.LABEL_KEYS)
                energies.append(float(g["energy"][()]) / len(z))
                folds.add(g.attrs.get("fold", "?"))
                if "forces" in g:
                    fmax.append(float(np.abs(g["forces"][()]).max()))
            elif g.attrs.get("status") == "failed":
                errors.append(f"  frame {i}: {g.attrs.get('error', '')}")
        basis_text = f.attrs.get("basis", "")
    lines = [
        f"{path}  ({path.stat().st_size / 1e6:.1f} MB, format {h5format.FORMAT})",
        f"  engine     : {', '.join(f'{k}={v}' for k, v in engine.items())}",
        f"  frames     : {len(all_ids)} total, {status['done']} done, {status['pending']} pending, "
        f"{status['failed']} failed",
        f"  elements   : {', '.join(sorted(elements))}",
        f"  atoms/frame: {min(natoms, default=0)}–{max(natoms, default=0)}",
        f"  labels     : {', '.join(k for k in h5format.LABEL_KEYS if k in keys) or '-'}",
    ]
    if basis_text:
        lines.append(f"  basis      : {Basis.from_json(basis_text).describe()} (e3nn order; H/S fold: "
                     f"{', '.join(sorted(folds)) or '-'})")
    if energies:
        e = np.array(energies)
        lines.append(f"  energy     : {e.mean():.4f} ± {e.std():.4f} eV/atom (min {e.min():.4f}, max {e.max():.4f})")
    if fmax:
        lines.append(f"  max |F|    : {np.max(fmax):.3f} eV/Å")
    if errors:
        lines.append("  failures   :")
        lines += errors[:10] + ([f"  ... and {len(errors) - 10} more"] if len(errors) > 10 else [])
    return "\n".join(lines)
