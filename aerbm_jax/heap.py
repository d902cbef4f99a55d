"""Keeping freed memory in the process's heap, so that compiled calls stop faulting pages in.

On CPU every call of a compiled XLA program allocates its outputs and one block for its
temporaries (42 MB for the mondrian autoencoder's training step), and frees the temporaries
when it returns. glibc's malloc serves a block over its mmap threshold (at most 32 MB) with a
fresh `mmap` and unmaps it on `free`, and it returns the top of a heap to the system once
more than its trim threshold is free there (128 KiB, rising to at most 64 MiB); either way
the next call touches new pages, and the kernel zeroes and maps each one again.
`keep_freed_memory` tells malloc to serve blocks up to a limit from its heap and to keep
what is freed for the next call. The training loops of the autoencoder, one compiled call
per minibatch, gain the most (benchmarks/results/freed-memory-cpu-2core-xeon.md); a program
that runs a long loop inside one call allocates once and has little to gain.

The setting is process-wide and cannot be undone by this module, so the library never makes
it on its own: the `aerbm` command does (`--freed-memory release` leaves the defaults), and a
program of your own may call `keep_freed_memory()` once at start.
"""

from __future__ import annotations

import ctypes
import platform

__all__ = ["keep_freed_memory"]

# glibc's mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3


def keep_freed_memory(limit: int = 1 << 30, pad: int = 64 << 20) -> bool:
  """Make glibc's malloc serve blocks up to `limit` bytes from its heap and keep freed memory.

  Blocks larger than `limit` are still mapped and unmapped on their own, and up to `limit`
  bytes free at the top of the heap are kept for reuse instead of being returned to the
  system, so the process's resident memory stays near its peak. The heap grows `pad` bytes
  beyond each request. Blocks allocated on other threads than the main one, as XLA's buffers
  are, come from glibc's per-thread heaps, which hold at most 64 MiB each: a compiled call
  whose temporaries take 60 MiB faults no pages in after its first calls, one whose take
  64 MiB still faults in all of them (tests/test_heap.py).

  Args:
    limit: the mmap threshold and trim threshold, in bytes (default 1 GiB).
    pad: the heap's top pad, in bytes (default 64 MiB).

  Returns:
    True when glibc took all three settings; False where the C library is not glibc (or
    refused one), in which case nothing may have changed.

  Raises:
    ValueError: `limit` or `pad` is negative or does not fit a C int.
  """
  for name, value in (("limit", limit), ("pad", pad)):
    if not 0 <= value < 2**31:
      raise ValueError(f"keep_freed_memory: {name}={value} must be in [0, 2**31) bytes")
  if platform.libc_ver()[0] != "glibc":
    return False
  libc = ctypes.CDLL(None)  # the C library this process already runs on
  done = [libc.mallopt(option, value) for option, value in
          ((_M_MMAP_THRESHOLD, limit), (_M_TRIM_THRESHOLD, limit), (_M_TOP_PAD, pad))]
  return all(d == 1 for d in done)
