"""What bench/*_torch.py share: the OpenBLAS that torch's BLAS calls go to, the thread
counts, the timed loop, and the fields every JSON line reports about them.

Imported, not run: each script's directory (bench/) is first on sys.path when it runs as
`python bench/NAME.py`. Needs no torch itself; torch comes in as an argument.
"""
import ctypes
import resource
import statistics
import time


def openblas():
    """The OpenBLAS library torch's BLAS calls go to (Debian: libblas.so.3 through
    update-alternatives, loaded with torch), with .path set; None when it is not OpenBLAS."""
    try:
        with open("/proc/self/maps") as f:
            libs = {line.split()[-1] for line in f if "openblas" in line.split()[-1]}
        for path in sorted(libs):
            lib = ctypes.CDLL(path)
            if hasattr(lib, "openblas_get_corename"):
                lib.openblas_get_corename.restype = ctypes.c_char_p
                lib.openblas_get_config.restype = ctypes.c_char_p
                lib.path = path
                return lib
    except (OSError, IndexError):
        pass
    return None


def set_threads(torch, threads, blas_threads=0):
    """torch's threads = threads (0: torch's own choice), and OpenBLAS's = blas_threads or
    threads: Debian's torch calls a "generic" BLAS, so set_num_threads does not reach
    OpenBLAS's own pthreads. Returns (the OpenBLAS library or None, its count or 0)."""
    if threads > 0:
        torch.set_num_threads(threads)
    blas = openblas()
    blas_threads = blas_threads or threads
    if blas is not None and blas_threads > 0:
        blas.openblas_set_num_threads(blas_threads)
    return blas, blas_threads


def blas_fields(blas):
    """The JSON fields that say which OpenBLAS ran: the core it picked, its build, its path."""
    return {"openblas_core": blas.openblas_get_corename().decode() if blas else None,
            "openblas_config": blas.openblas_get_config().decode() if blas else None,
            "openblas_lib": blas.path if blas else None}


class Timing:
    """times: wall seconds of each timed call; cpu: process CPU seconds (all threads) per
    timed call; results: what each timed call returned."""

    def __init__(self, times, cpu, results):
        self.times, self.cpu, self.results = times, cpu, results
        self.mean = sum(times) / len(times)

    def fields(self, unit):
        """<unit>_s_mean, _median and _min, rounded as aspo prints them."""
        return {unit + "_s_mean": round(self.mean, 4),
                unit + "_s_median": round(statistics.median(self.times), 4),
                unit + "_s_min": round(min(self.times), 4)}


def time_calls(call, warmup, steps, sync=None):
    """Runs call() warmup times untimed, then steps times timed one by one (perf_counter
    around each call, process CPU time around all of them). sync (torch.cuda.synchronize for
    a GPU) runs before the timed calls and inside each one's time after it, so a device that
    runs ahead of the host is timed to the end of its work."""
    sync = sync or (lambda: None)
    for _ in range(warmup):
        call()
    sync()
    times, results = [], []
    cpu0 = time.process_time()
    for _ in range(steps):
        t0 = time.perf_counter()
        results.append(call())
        sync()
        times.append(time.perf_counter() - t0)
    return Timing(times, (time.process_time() - cpu0) / steps, results)


def peak_rss_mb():
    """getrusage's ru_maxrss of this process in MiB, as aspo's peak_rss_mb."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
