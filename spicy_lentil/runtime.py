"""Process-wide settings for CPU inference: torch threads and how freed memory is kept.

Reranking allocates the same large tensors batch after batch (a batch's token embeddings are
about 15 MB). glibc hands blocks that large back to the kernel when they are freed and maps them
again for the next batch, and every 4 KiB page of fresh memory costs a page fault on first touch,
which on virtual machines costs more than the arithmetic done on it. Raising glibc's mmap and trim
thresholds keeps that memory in the process for the next batch. The front ends (`spicy-lentil`,
the app) call `configure` once at start; a Python user may too.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

_M_TRIM_THRESHOLD = -1  # glibc mallopt parameter numbers (malloc.h)
_M_MMAP_THRESHOLD = -3
_MMAP_THRESHOLD_MAX = 32 * 1024 * 1024  # glibc's ceiling for M_MMAP_THRESHOLD on 64-bit systems
_TRIM_THRESHOLD = 1024 * 1024 * 1024


def configure(threads: int | None = None, keep_freed_memory: bool = True) -> dict:
    """Sets torch's thread count and glibc's allocator thresholds for this process.

    Args:
        threads: torch intra-op threads; None or 0 leaves torch's choice (one per physical core).
        keep_freed_memory: keep freed blocks of up to 32 MB in the process for reuse (glibc only;
            a no-op elsewhere). Costs resident memory up to the largest batch's working set.

    Returns:
        What was set: `{"threads": int, "keep_freed_memory": bool}`.
    """
    import torch

    if threads:
        torch.set_num_threads(threads)
    kept = False
    if keep_freed_memory and sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
            kept = bool(libc.mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD_MAX)) and bool(libc.mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD))
        except (OSError, AttributeError):  # not glibc (musl has no mallopt)
            kept = False
    return {"threads": torch.get_num_threads(), "keep_freed_memory": kept}
