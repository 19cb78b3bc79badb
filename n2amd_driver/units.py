"""Units: the one place where conversion factors live.

Inside the package everything is in **eV, Å, fs and amu** (and K for temperature).
Atomic units (hartree, bohr, a.u. of time, electron mass) appear only at the edges:
the i-PI socket and the reference engines (tblite, pyscf), which work in atomic units.

Values are CODATA 2018 (the set ASE, i-PI and scipy 1.4+ use), so numbers written by
this package agree with theirs digit for digit.

Derived quantities are computed from the primary constants rather than typed in,
so the set is consistent by construction (e.g. ħ = E_h · t_au).
"""
from __future__ import annotations

import math

# ---- primary constants (CODATA 2018, SI) ---------------------------------------------
SPEED_OF_LIGHT_M_S = 299_792_458.0
PLANCK_J_S = 6.626_070_15e-34
ELEMENTARY_CHARGE_C = 1.602_176_634e-19
BOLTZMANN_J_K = 1.380_649e-23
AVOGADRO_PER_MOL = 6.022_140_76e23
ELECTRON_MASS_KG = 9.109_383_7015e-31
ATOMIC_MASS_UNIT_KG = 1.660_539_066_60e-27
HARTREE_J = 4.359_744_722_2071e-18
BOHR_M = 0.529_177_210_903e-10

# ---- derived, in the package's working units -------------------------------------------
HBAR_J_S = PLANCK_J_S / (2.0 * math.pi)
#: 1 hartree in eV (27.211386...)
HARTREE_EV = HARTREE_J / ELEMENTARY_CHARGE_C
#: 1 bohr in Å (0.529177...)
BOHR_ANG = BOHR_M * 1e10
#: ħ in eV·fs (0.658212...)
HBAR_EV_FS = HBAR_J_S / ELEMENTARY_CHARGE_C * 1e15
#: atomic unit of time in fs (ħ / E_h = 0.0241888...)
AU_TIME_FS = HBAR_J_S / HARTREE_J * 1e15
#: Boltzmann constant in eV/K (8.617333e-5)
KB_EV_K = BOLTZMANN_J_K / ELEMENTARY_CHARGE_C
#: 1 amu in electron masses (1822.888...)
AMU_ME = ATOMIC_MASS_UNIT_KG / ELECTRON_MASS_KG
#: 1 eV/Å³ in GPa (160.2176...)
EV_PER_ANG3_GPA = ELEMENTARY_CHARGE_C / 1e-30 / 1e9
#: 1 bar in eV/Å³
BAR_EV_PER_ANG3 = 1e5 / (EV_PER_ANG3_GPA * 1e9)
#: velocity: 1 Å/fs in bohr per a.u. time
ANG_FS_TO_AU_VELOCITY = AU_TIME_FS / BOHR_ANG
#: force: 1 eV/Å in hartree/bohr
EV_ANG_TO_HARTREE_BOHR = BOHR_ANG / HARTREE_EV
#: kinetic energy: with mass in amu and velocity in Å/fs, ½ m v² in eV is ½ m v² · this
AMU_ANG2_FS2_EV = ATOMIC_MASS_UNIT_KG * 1e-10**2 / 1e-15**2 / ELEMENTARY_CHARGE_C


def hartree_to_ev(x):
    """Energy hartree → eV (works on floats and arrays)."""
    return x * HARTREE_EV


def ev_to_hartree(x):
    """Energy eV → hartree."""
    return x / HARTREE_EV


def bohr_to_ang(x):
    """Length bohr → Å."""
    return x * BOHR_ANG


def ang_to_bohr(x):
    """Length Å → bohr."""
    return x / BOHR_ANG


def force_au_to_ev_ang(x):
    """Force hartree/bohr → eV/Å."""
    return x * (HARTREE_EV / BOHR_ANG)


def force_ev_ang_to_au(x):
    """Force eV/Å → hartree/bohr."""
    return x * EV_ANG_TO_HARTREE_BOHR


def fs_to_au_time(t):
    """Time fs → atomic units of time."""
    return t / AU_TIME_FS


def au_time_to_fs(t):
    """Time atomic units → fs."""
    return t * AU_TIME_FS


def kelvin_to_ev(T):
    """Thermal energy k_B·T in eV for T in K."""
    return T * KB_EV_K
