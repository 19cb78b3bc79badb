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
PLANCK_J_S = 6.626_070_15e-34
ELEMENTARY_CHARGE_C = 1.602_176_634e-19
BOLTZMANN_J_K = 1.380_649e-23
HARTREE_J = 4.359_744_722_2071e-18
BOHR_M = 0.529_177_210_903e-10
ATOMIC_MASS_KG = 1.660_539_066_60e-27

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
#: kinetic energy of 1 amu at 1 Å/fs, in eV (103.6427...): E_kin = ½ m v² · AMU_A2_FS2_EV
AMU_A2_FS2_EV = ATOMIC_MASS_KG * 1e10 / ELEMENTARY_CHARGE_C
#: 1 eV/Å³ in GPa (160.2176...)
EV_PER_ANG3_GPA = ELEMENTARY_CHARGE_C / 1e-30 / 1e9
