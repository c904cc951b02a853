"""Resident memory of this process, for the measuring tools (standard library only).

``tools/analysis_tools/benchmark_attention.py`` loads this file on its own (it runs where only torch is
installed), so it must not import the rest of panet_mm.
"""
import os
import resource
import sys


def current_rss_bytes() -> int:
    """Resident set size of this process now (``/proc``; the peak where ``/proc`` is missing)."""
    try:
        with open('/proc/self/statm') as f:
            return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE')
    except OSError:
        return peak_rss_bytes()


def peak_rss_bytes() -> int:
    """Largest resident set size this process has had, in bytes."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == 'darwin' else peak * 1024     # bytes on macOS, KiB on Linux


__all__ = ['current_rss_bytes', 'peak_rss_bytes']
