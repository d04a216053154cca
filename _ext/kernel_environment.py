"""One environment for every kernel that runs a page: in the build and in the tests.

A page must print the same numbers on every run and every machine, or its
stored outputs (tests/references/) cannot be compared. Seeding the random
generators is the page's job; what the kernel's environment decides is
fixed here:

- ``OMP_NUM_THREADS=1``: PyTorch's float reductions (a mean over 10^5
  samples, say) add up in a different order with one thread than with
  several, which changes the last bits of the result. Measured on
  differentiating-randomness.md: its glued Monte Carlo estimates differ in
  the 7th significant digit between 1 thread and 2 (2, 3 and 8 threads
  agree), and PyTorch picks one thread per core by default, so a one-core
  CI machine would have failed the stored outputs. One thread also keeps
  the test workers (one kernel per core) from oversubscribing the cores.
- ``PYTHONHASHSEED=0``: the iteration order of sets of strings does not
  change from run to run. No page is known to depend on it (the
  determinism test runs a page with another seed to check).

The build sets these for the kernels MyST-NB starts (Sphinx extension,
below); ``tests/book_pages.execute_page`` passes the same ``KERNEL_ENV``.
Floating-point results can still differ between CPU architectures
(vectorised kernels differ: ``ATEN_CPU_CAPABILITY=default`` changes the
same glued values); the stored outputs come from x86-64 with AVX2/AVX-512,
which agree.
"""

from __future__ import annotations

import os

KERNEL_ENV = {"OMP_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}


def setup(app):
    # Kernels are started by this process and inherit its environment.
    os.environ.update(KERNEL_ENV)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
