"""Process-wide settings for CPU inference: threads, batch workers, and how freed memory is kept.

Threads. Inference runs many batches (of texts to encode, of documents to rerank), and on a
2-core machine running two batches side by side, one intra-op thread each, beats running them one
after another on two intra-op threads: the reranker's small operations gain nothing from a second
thread (BENCHMARKS.md, "Search latency": batches side by side against one at a time), and the encoder's large
ones gain no more from it than from a second batch worker. Training keeps intra-op threads for
its large backward passes.

numpy's and scipy's BLAS (OpenBLAS, used by the first stage's dot products over the index) get
the same thread count as torch. Left at one thread per core, OpenBLAS's helper threads keep
spinning for a while after each product, on the very cores the batch workers
are about to use, so a search is faster with BLAS held to one thread (BENCHMARKS.md, "Search latency").

Memory. Reranking allocates the same large tensors batch after batch (a batch's token embeddings).
glibc hands blocks that large back to the kernel when they are freed and maps
them again for the next batch, and every 4 KiB page of fresh memory costs a page fault on first
touch, which on virtual machines costs more than the arithmetic done on it. Raising glibc's mmap
and trim thresholds keeps that memory in the process for the next batch.

The front ends (`spicy-lentil`, the app) call `configure` once at start; a Python user may too.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterable, Iterator, TypeVar

_M_TRIM_THRESHOLD = -1  # glibc mallopt parameter numbers (malloc.h)
_M_MMAP_THRESHOLD = -3
_MMAP_THRESHOLD_MAX = 32 * 1024 * 1024  # glibc's ceiling for M_MMAP_THRESHOLD on 64-bit systems
_TRIM_THRESHOLD = 1024 * 1024 * 1024

T = TypeVar("T")
R = TypeVar("R")

_workers = 0  # batches run at once, set by `configure`; 0 = torch's thread count
_default_cores = 0  # torch's thread count when `configure` first ran
_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def configure(threads: int | None = None, keep_freed_memory: bool = True, parallel_batches: bool = True) -> dict:
    """Sets how many cores are used and how, and glibc's allocator thresholds, for this process.

    Args:
        threads: cores to use; None or 0 = torch's default (one per physical core).
        keep_freed_memory: keep freed blocks of up to 32 MB in the process for reuse (glibc only;
            a no-op elsewhere). Costs resident memory up to the largest batches' working set.
        parallel_batches: inference: one torch intra-op thread, and `threads` encoder or model
            batches run at once. False: `threads` intra-op threads and one batch at a time (training,
            whose large backward passes do gain from intra-op threads).

    Returns:
        What was set: `{"threads": torch intra-op threads, "batch_workers": int, "blas_threads": int,
        "keep_freed_memory": bool}`.
    """
    import torch

    global _workers, _pool, _default_cores
    if _default_cores == 0:
        _default_cores = torch.get_num_threads()  # before this function first changes it
    cores = threads or _default_cores
    with _pool_lock:
        _workers = cores if parallel_batches else 1
        if _pool is not None:
            _pool.shutdown(wait=False)
            _pool = None
    torch.set_num_threads(1 if parallel_batches else cores)
    blas_threads = 1 if parallel_batches else cores
    _limit_blas(blas_threads)
    kept = False
    if keep_freed_memory and sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
            kept = bool(libc.mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD_MAX)) and bool(
                libc.mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD)
            )
        except (OSError, AttributeError):  # not glibc (musl has no mallopt)
            kept = False
    return {
        "threads": torch.get_num_threads(),
        "batch_workers": batch_workers(),
        "blas_threads": blas_threads,
        "keep_freed_memory": kept,
    }


def _limit_blas(threads: int) -> None:
    import numpy  # noqa: F401  (threadpoolctl limits the BLAS libraries already loaded)
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=threads, user_api="blas")


def batch_workers() -> int:
    """How many encoder or model batches run at once (without `configure`: torch's thread count)."""
    import torch

    return _workers or torch.get_num_threads()


def map_batches(fn: Callable[[T], R], batches: Iterable[T]) -> Iterator[R]:
    """`fn` over `batches`, run on the batch workers (one intra-op thread each); results in order, as they finish."""
    batches = list(batches)
    if batch_workers() < 2 or len(batches) < 2:
        return map(fn, batches)
    return _batch_pool().map(fn, batches)


def _batch_pool() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = _single_threaded_pool(batch_workers())
        return _pool


def _single_threaded_pool(workers: int) -> ThreadPoolExecutor:
    import torch

    # torch's thread count is per thread (OpenMP), set from a process-wide default on the thread's
    # first parallel call, and setting it also changes that default. So each worker makes its
    # first call, then sets one thread; once every worker has, the caller gives the default back.
    threads = torch.get_num_threads()
    started = threading.Barrier(workers)

    def one_thread() -> None:
        torch.get_num_threads()
        torch.set_num_threads(1)

    pool = ThreadPoolExecutor(workers, thread_name_prefix="spicy-lentil-batch", initializer=one_thread)
    for future in [pool.submit(started.wait) for _ in range(workers)]:
        future.result()
    torch.set_num_threads(threads)
    return pool
