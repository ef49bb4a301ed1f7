"""Process-wide tuning of glibc's malloc for work made of many large short-lived tensors.

By default glibc serves blocks above a (self-adjusting) threshold with fresh mmap()s and gives freed
memory at the top of the heap back to the OS, so every such temporary is paid again in page faults
on first touch. The renderer makes thousands of 1-3 MB temporaries per batch; what keeping them
saves is measured in RESULTS.md (the renderer section).
"""

import ctypes

# mallopt parameter numbers from glibc's malloc.h
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_MMAP_THRESHOLD_MAX = 32 << 20  # glibc's ceiling for M_MMAP_THRESHOLD on 64-bit systems
_TRIM_THRESHOLD = 1 << 30


def keep_freed_memory() -> bool:
    """Serve blocks up to 32 MB from the heap and keep up to 1 GB of freed heap mapped.
    Returns False where the C library is not glibc (nothing is changed there)."""
    libc = ctypes.CDLL(None)  # the running process's symbols, the C library's among them: no library search
    if not hasattr(libc, "mallopt") or not hasattr(libc, "gnu_get_libc_version"):
        return False
    return bool(libc.mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD_MAX)) and bool(libc.mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD))
