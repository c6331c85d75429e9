#!/usr/bin/python3
"""The shapes of bench_matmul.c in PyTorch (f32, CPU), printed as the same JSON lines.

    /usr/bin/python3 bench/matmul_torch.py [--tokens N] [--reps N] [--threads N] [--only NAME]

A benchmark, not a test: it never asserts. Written for Debian's python3-torch 1.13.
"""
import argparse
import json
import math
import statistics
import sys
import time

import torch

from bench_timing import set_threads, time_calls

TARGET_SECONDS = 0.3  # per shape: enough samples for small shapes, as in bench_matmul.c
MAX_SAMPLES = 1000


def shapes(tokens):
    """(name, M, K, N, linear) in bench_matmul.c's order and naming."""
    out = [(f"cube {n}", n, n, n, False) for n in (256, 1024, 2048)]
    out.append((f"linear {tokens}x4096x4096", tokens, 4096, 4096, True))
    out.append((f"linear {tokens}x4096x11008", tokens, 4096, 11008, True))
    return out


def samples_for(seconds, reps):
    n = math.ceil(TARGET_SECONDS / seconds) if seconds > 0 else reps
    return min(max(n, reps), MAX_SAMPLES)


def bench(name, M, K, N, linear, reps, threads):
    g = torch.Generator().manual_seed(0)
    a = torch.rand(M, K, generator=g) * 2 - 1  # (M,K)
    b = torch.rand(N, K, generator=g) * 2 - 1 if linear else torch.rand(K, N, generator=g) * 2 - 1
    bt = b.t() if linear else b  # the Linear layer's view of W (N,K); no copy

    def call():
        return torch.matmul(a, bt)  # (M,N)

    with torch.no_grad():
        t0 = time.perf_counter()
        call()
        times = time_calls(call, 0, samples_for(time.perf_counter() - t0, reps)).times
    s = statistics.median(times)
    return {"name": name, "M": M, "K": K, "N": N, "b": "W^T" if linear else "B",
            "threads": threads, "torch_ms": round(1e3 * s, 4),
            "torch_gflops": round(2.0 * M * N * K / s * 1e-9, 2)}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tokens", type=int, default=512)
    p.add_argument("--reps", type=int, default=7)
    p.add_argument("--threads", type=int, default=0, help="default: torch's own choice")
    p.add_argument("--only", default=None, help="shapes whose name contains this")
    args = p.parse_args()
    blas, _ = set_threads(torch, args.threads)
    print(json.dumps({"config": True, "torch_version": torch.__version__,
                      "torch_threads": torch.get_num_threads(),
                      "torch_blas_core": blas.openblas_get_corename().decode() if blas else None,
                      "torch_blas_config": blas.openblas_get_config().decode() if blas else None,
                      "torch_blas_threads": blas.openblas_get_num_threads() if blas else None,
                      "tokens": args.tokens, "reps": args.reps}), flush=True)
    for name, M, K, N, linear in shapes(args.tokens):
        if args.only is None or args.only in name:
            print(json.dumps(bench(name, M, K, N, linear, args.reps, torch.get_num_threads())),
                  flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
