"""What every benchmark script shares: the machine line for the record, and percentiles.
The scripts run as `python benchmarks/<name>.py`, so this imports as `_common`."""

from __future__ import annotations

import os
import platform
import resource


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def machine(*, detailed: bool = False) -> str:
    """CPU model and cores; with `detailed`, also RAM, OS and library versions."""
    if not detailed:
        return f"{cpu_model()}, {os.cpu_count()} cores"
    mem = ""
    try:
        with open("/proc/meminfo", encoding="utf-8") as fh:
            mem = f", {int(fh.readline().split()[1]) / 1024 / 1024:.0f} GB RAM"
    except OSError:
        pass
    import aiohttp
    import textual

    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return (
        f"{cpu_model()}, {os.cpu_count()} cores ({usable} usable){mem}; {platform.system()} {platform.release()}; "
        f"Python {platform.python_version()}, Textual {textual.__version__}, aiohttp {aiohttp.__version__}"
    )


def pct(values: list[float], p: float) -> float:
    """The p-th percentile (nearest rank), NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def raise_nofile() -> int:
    """Raise the open-files limit to the hard limit (thousands of held connections); returns it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else 1 << 20
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]
