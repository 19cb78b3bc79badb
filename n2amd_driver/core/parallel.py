"""MPI plumbing of the post-processing jobs: who am I, which share of the work is mine, and how a
failing rank stops the others. Works without MPI (one rank) and under ``mpirun -n N``."""
from __future__ import annotations

import sys
from contextlib import contextmanager
from dataclasses import dataclass


@dataclass
class Ranks:
    """This process's place among the job's ranks (``comm`` is None without MPI)."""

    comm: object | None
    rank: int
    size: int

    def barrier(self) -> None:
        if self.size > 1:
            self.comm.Barrier()

    def gather(self, obj) -> list | None:
        """Every rank's ``obj`` on rank 0 (in rank order); None elsewhere."""
        if self.size == 1:
            return [obj]
        return self.comm.gather(obj, root=0)

    def allgather(self, obj) -> list:
        """Every rank's ``obj`` on every rank (in rank order)."""
        return [obj] if self.size == 1 else self.comm.allgather(obj)

    def bcast(self, obj):
        return obj if self.size == 1 else self.comm.bcast(obj, root=0)

    @contextmanager
    def stop_all_on_error(self, job: str, hint=None):
        """Under MPI, a rank that fails prints one line naming itself and the error (and ``hint``: a text, or
        a function asked for one at that moment, which may return None), then stops every rank (MPI_Abort).
        With one rank the exception propagates, with the hint added as a note, for the command to print."""
        try:
            yield
        except Exception as exc:
            text = hint() if callable(hint) else hint
            if self.size == 1:  # the command prints it, as one line with the hint
                if text:
                    exc.add_note(text)
                raise
            tail = f" ({text})" if text else ""
            print(f"[n2amd {job}] rank {self.rank}: {type(exc).__name__}: {exc}{tail}", file=sys.stderr, flush=True)
            self.comm.Abort(1)
            raise


def world() -> Ranks:
    """The ranks of ``MPI.COMM_WORLD``, or a single rank when mpi4py is not there."""
    try:
        from mpi4py import MPI
    except ImportError:
        return Ranks(None, 0, 1)
    comm = MPI.COMM_WORLD
    return Ranks(comm, comm.rank, comm.size)


def chunk(n: int, rank: int, size: int) -> range:
    """Contiguous share of ``range(n)`` for ``rank`` of ``size`` (shares differ by at most one)."""
    base, extra = divmod(n, size)
    start = rank * base + min(rank, extra)
    return range(start, start + base + (rank < extra))
