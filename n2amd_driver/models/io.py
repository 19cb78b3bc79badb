"""Model files: one ``torch.save`` dict per model, written by training and read everywhere else.

Every file holds ``kind`` ("hamiltonian", "forcefield" or "nnh"), the architecture ``config``, the
weights, the training ``dtype``, ``units``, the ``reference`` engine it was fitted to, its validation
metrics and the package version. An NNH file nests a Hamiltonian file and (optionally) a remainder
force-field file, plus the smearing and the repulsion prior's parameters. Loading rebuilds the model
from its config, so files do not depend on where classes live in the package.

    model = load_model("si_mlff.pt")            # path, or the name of a bundled model
    h = load_hamiltonian_model("si_hamiltonian.pt", dtype="float64")
"""
from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import torch

from ..core.checkpoint import save_torch
from ..core.version import __version__

BUNDLED = Path(__file__).parents[1] / "assets" / "models"
FORCE_KINDS = ("forcefield", "nnh")
KINDS = ("hamiltonian", "forcefield", "nnh")


def resolve_model_path(path) -> Path:
    """``path`` itself, or a bundled model of that name (``si_mlff.pt``, ``si_nnh.pt``, ...)."""
    p = Path(path)
    if p.exists():
        return p
    if (BUNDLED / p.name).exists() and p.parent == Path("."):
        return BUNDLED / p.name
    known = ", ".join(sorted(x.name for x in BUNDLED.glob("*.pt"))) if BUNDLED.exists() else "none"
    raise FileNotFoundError(f"model file not found: {path} (bundled models: {known})")


def pick_device(name: str = "auto") -> torch.device:
    """``auto``: CUDA when present, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


@contextmanager
def default_dtype(dtype: torch.dtype):
    """torch's default dtype set for the block and restored after it (e3nn builds its constants in it)."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)


def read_model_file(path, kind: str | tuple[str, ...] | None = None) -> dict:
    """The saved dict of an n2amd model file, checked to be of ``kind`` (one kind or several)."""
    path = resolve_model_path(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:
        raise ValueError(f"{path}: not a readable model file: {exc}") from None
    if not isinstance(state, dict) or state.get("kind") not in KINDS:
        raise ValueError(f"{path}: not an n2amd model file")
    kinds = (kind,) if isinstance(kind, str) else kind
    if kinds is not None and state["kind"] not in kinds:
        raise ValueError(f"{path}: a '{state['kind']}' model file, expected {' or '.join(kinds)}")
    return state


def save_model_file(path, kind: str, model, **entries) -> Path:
    """Write ``model`` (its config and weights) as a ``kind`` model file with ``entries`` (reference,
    training config, validation metrics, ...), atomically."""
    dtype = next(model.parameters()).dtype
    return save_torch({"kind": kind, "config": model.config.to_dict(), "state_dict": model.state_dict(),
                       "dtype": str(dtype).replace("torch.", ""), "package_version": __version__, **entries},
                      Path(path))


def build_model(make, state_dict: dict, dtype: torch.dtype, device: str = "auto"):
    """``make()`` under ``dtype`` as default, weights loaded (cast to ``dtype``), moved to ``device``, eval mode."""
    with default_dtype(dtype):
        model = make()
    model.load_state_dict({k: v.to(dtype) if v.is_floating_point() else v for k, v in state_dict.items()})
    return model.to(device=pick_device(device), dtype=dtype).eval()


def _dtype(state: dict, dtype: str | None) -> torch.dtype:
    if dtype not in (None, "float32", "float64"):
        raise ValueError(f"dtype must be float32 or float64, not {dtype!r}")
    return getattr(torch, dtype or state["dtype"])


def hamiltonian_from_state(state: dict, device: str = "auto", dtype: str | None = None):
    """The Hamiltonian model of a loaded model-file dict; ``dtype`` overrides the trained precision
    (float32 is ~2.5× faster on CPUs)."""
    from .hamiltonian import HamiltonianConfig, HamiltonianModel

    model = build_model(lambda: HamiltonianModel(HamiltonianConfig(**state["config"])), state["state_dict"],
                        _dtype(state, dtype), device)
    model.info = {k: state.get(k) for k in ("reference", "validation", "epoch", "units", "package_version",
                                            "valence_electrons", "domain")}
    return model


def forcefield_from_state(state: dict, device: str = "auto", dtype: str | None = None):
    """The MLFF of a loaded model-file dict (``dtype`` overrides the trained one)."""
    from .forcefield import ForceFieldConfig, ForceFieldModel

    config = {"scalar_last_layer": False, **state["config"]}  # files from before the option had full last layers
    model = build_model(lambda: ForceFieldModel(ForceFieldConfig(**config)), state["state_dict"],
                        _dtype(state, dtype), device)
    model.info = {k: state.get(k) for k in ("reference", "validation", "epoch", "units", "package_version",
                                            "domain")}
    return model


def nnh_from_state(state: dict, path: str | None = None):
    """The NNH model of a loaded model-file dict; NNH runs on the CPU in float64 (the eigensolver and the
    overlaps are numpy)."""
    from .nnh import NNHModel
    from .repulsion import PairRepulsion

    rem = state.get("remainder")
    rem = forcefield_from_state(rem, "cpu", "float64") if rem is not None else None
    prior = PairRepulsion.from_state(state["prior"]) if state.get("prior") else None  # files before priors: none
    return NNHModel(hamiltonian_from_state(state["hamiltonian"], "cpu"), rem, state["kT_eV"], path, prior)


def load_model(path, device: str = "auto", dtype: str | None = None, kinds: tuple[str, ...] = KINDS):
    """Any n2amd model file, by path or bundled name; ``kinds`` restricts which are accepted."""
    path = resolve_model_path(path)
    state = read_model_file(path, kinds)
    if state["kind"] == "hamiltonian":
        return hamiltonian_from_state(state, device, dtype)
    if state["kind"] == "forcefield":
        return forcefield_from_state(state, device, dtype)
    if dtype not in (None, "float64") or device not in ("auto", "cpu"):
        raise ValueError(f"{path}: an NNH model runs in float64 on the CPU (its eigensolver and overlaps are numpy); "
                         f"dtype={dtype!r}, device={device!r} is not available for it")
    return nnh_from_state(state, str(path))


def load_hamiltonian_model(path, device: str = "auto", dtype: str | None = None):
    """A Hamiltonian model file: ``model = load_hamiltonian_model("model.pt")``; an NNH file gives the
    Hamiltonian its forces come from (so couplings and NNH-MD use the same H)."""
    state = read_model_file(resolve_model_path(path), ("hamiltonian", "nnh"))
    return hamiltonian_from_state(state["hamiltonian"] if state["kind"] == "nnh" else state, device, dtype)


def load_force_model(path, device: str = "auto", dtype: str | None = None):
    """A model that gives forces (an MLFF or NNH forces), for the calculator and the MD drivers."""
    return load_model(path, device, dtype, kinds=FORCE_KINDS)


def save_nnh_model(path, hamiltonian_path, remainder_path=None, kT: float = 0.0, prior=None) -> Path:
    """One file holding the Hamiltonian model, the repulsion prior (its parameters), the remainder MLFF and
    the smearing (kT in eV)."""
    state = {"kind": "nnh", "hamiltonian": read_model_file(hamiltonian_path, "hamiltonian"), "kT_eV": float(kT),
             "prior": prior.state() if prior is not None else None,
             "remainder": read_model_file(remainder_path, "forcefield") if remainder_path else None,
             "units": {"energy": "eV", "length": "Å", "forces": "eV/Å"}, "package_version": __version__}
    return save_torch(state, Path(path))
