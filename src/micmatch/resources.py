"""Size checks before large allocations: a size option that would exhaust memory is refused with one line naming
the option, instead of growing until the kernel kills the process or numpy raises a MemoryError traceback."""

from __future__ import annotations

import os

from micmatch.errors import ParameterError

#: Share of the available memory one allocation plan may use.
MEMORY_SHARE = 0.5


def available_memory() -> int:
    """Bytes of memory available to new allocations now (``MemAvailable`` on Linux; physical memory elsewhere)."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:  # pragma: no cover - not Linux
        pass
    try:  # pragma: no cover - not Linux
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):  # pragma: no cover
        return 1 << 34


def _human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"  # pragma: no cover


def check_memory(n_bytes: float, what: str) -> None:
    """Raise :class:`ParameterError` when ``n_bytes`` exceeds :data:`MEMORY_SHARE` of the available memory.

    ``what`` names the option and value responsible, e.g. ``"--n-fft 1073741824"``.
    """
    limit = MEMORY_SHARE * available_memory()
    if n_bytes > limit:
        raise ParameterError(f"{what} needs about {_human(n_bytes)} of memory; {_human(limit)} is available "
                             f"for it here: use a smaller value")


def stats_bytes(n_fft: int) -> float:
    """Working memory of the statistics path for one FFT size (one chunk of frames through FFT and kernel)."""
    from micmatch.logstats import CHUNK_FRAMES

    return float(CHUNK_FRAMES) * n_fft * 24 + 64.0 * n_fft


def fir_design_bytes(n_taps: int, n_bins: int) -> float:
    """Working memory of the least-squares FIR design (scipy.signal.firls with one band per pair of bins)."""
    m = (n_taps + 1) // 2
    return 8.0 * (3.0 * 2 * n_bins * n_taps + m * m)
