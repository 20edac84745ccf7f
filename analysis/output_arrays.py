"""The batch engine's large result arrays, on plain anonymous pages instead of numpy's huge pages.

Why this exists (measured, issue 16): the cost per firm-event of a fit grew from 100,000 to 1,000,000
firm-events, and the growth was kernel time on fresh memory. glibc serves an allocation above its
mmap threshold (dynamic, at most 32 MiB on 64-bit) with fresh pages from ``mmap`` and unmaps them on
free, so the engine's (N, 21) result arrays (168 MB each at 10^6 firm-events) are new memory in every
fit, while at 10^5 (16.8 MB) they may come back recycled from the heap. numpy advises
``MADV_HUGEPAGE`` on every allocation of 4 MiB or more, so with transparent huge pages in ``madvise``
mode (this machine, a common default) the first touch faults in 2 MiB pages, each allocated and
cleared by the kernel (``thp_fault_alloc`` in /proc/vmstat): filling one 168 MB array took 0.21-0.26 s
of kernel time through ``np.empty``, 0.016-0.024 s on plain anonymous pages (same bytes, same copies,
one process); the engine's (N, 4) arrays at 10^6 (32 MB, just under glibc's ceiling) paid the same.

So an array that numpy would advise (at least :data:`FRESH_MAPPING_BYTES`) is made here as a private
anonymous mapping without advice (the kernel's default page policy), mapped in at once
(``MAP_POPULATE``: every page is written by the fit anyway) and freed when its last view goes; smaller
ones stay with ``np.empty``. Measured in one process against the 32 MiB cut (only what glibc never
recycles): 0.7-1.0 s instead of 1.0-1.5 s kernel per 1M fit, 2-3% more CPU at 100k (its 16.8 MB
arrays are no longer recycled from the heap in a warm process). Only where the memory comes from
changes: the values written into it, so every number, are the same.
"""

from __future__ import annotations

import errno
import mmap

import numpy as np
from numpy.typing import DTypeLike

#: numpy's threshold for its huge-page advice (``indicate_hugepages`` in numpy's alloc.c, 4 MiB).
FRESH_MAPPING_BYTES = 1 << 22


def empty(shape: int | tuple[int, ...], dtype: DTypeLike = np.float64) -> np.ndarray:
    """An uninitialised, writable, C-contiguous array; one of at least :data:`FRESH_MAPPING_BYTES`
    on anonymous pages without huge-page advice (see the module docstring for why)."""
    dt = np.dtype(dtype)
    dims = (shape,) if isinstance(shape, int) else tuple(shape)
    nbytes = int(np.prod(dims, dtype=np.int64)) * dt.itemsize
    if nbytes == 0 or nbytes < FRESH_MAPPING_BYTES or dt.hasobject or not hasattr(mmap, "MAP_ANONYMOUS"):
        # (Windows' mmap takes no flags: numpy's own allocation there.)
        return np.empty(dims, dtype=dt)
    # MAP_POPULATE: the kernel maps every page in the one call (20% less kernel time for 168 MB here
    # than a fault per 4 KiB page on first touch).
    flags = mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | getattr(mmap, "MAP_POPULATE", 0)
    try:
        buf = mmap.mmap(-1, nbytes, flags=flags)
    except OSError as exc:  # out of memory: the error np.empty would have raised
        if exc.errno == errno.ENOMEM:
            raise MemoryError(f"cannot allocate {nbytes:,} bytes for an array of shape {dims}") from exc
        raise
    return np.frombuffer(buf, dtype=dt).reshape(dims)
