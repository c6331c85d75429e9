#!/usr/bin/python3
"""The markdown tables of bench/run_*.sh (the ones in docs/PERFORMANCE.md), from the JSON
lines a run collected, each tagged with its "round" and "config" by bench/lib.sh.

    /usr/bin/python3 bench/bench_table.py train|llava|clip|matmul RESULTS

train, llava and clip compare aspo with the three PyTorch setups of bench/lib.sh: a row per
setup (and loss), its best round by the rate, the median round in parentheses, and aspo's
best over this row's best. Standard library only: it runs with Debian's python3.
"""
import json
import statistics
import sys

CONFIGS = ("aspo", "aspo padded", "torch", "torch passive", "torch openmp-blas")
SETUP = {"torch passive": ", OMP_WAIT_POLICY=passive", "torch openmp-blas": ", OpenMP OpenBLAS"}


def read_lines(path):
    with open(path) as f:
        return [json.loads(line) for line in f]


class Row:
    """One configuration's rounds: best (by the rate), median of the rate, aspo / this."""

    def __init__(self, cfg, loss, rounds, rate, aspo_best):
        self.cfg, self.loss = cfg, loss
        self.best = max(rounds, key=lambda r: r[rate])
        self.median = statistics.median(r[rate] for r in rounds)
        self.ratio = "" if cfg == "aspo" else "%.2f" % (aspo_best / self.best[rate])

    def describe(self, impl):
        if self.cfg == "aspo":
            return "aspo"
        if self.cfg == "aspo padded":
            return "aspo --no-prefix-sharing (padded, prompts twice, as TRL)"
        return "torch %s (%s%s)" % (self.best["torch_version"], impl(self.best),
                                    SETUP.get(self.cfg, ""))


def compare(lines, rate, impl, columns):
    """Prints the table; columns: (header, right-aligned, cell(row, impl)). Returns the rows."""
    runs = {}
    for r in lines:
        runs.setdefault((r.get("loss"), r["config"]), []).append(r)
    rows = []
    for loss in ("dpo", "aspo", None):
        if (loss, "aspo") not in runs:
            continue
        aspo_best = max(r[rate] for r in runs[(loss, "aspo")])
        rows += [Row(cfg, loss, runs[(loss, cfg)], rate, aspo_best) for cfg in CONFIGS
                 if (loss, cfg) in runs]
    print("| " + " | ".join(c[0] for c in columns) + " |")
    print("|" + "|".join("---:" if c[1] else "---" for c in columns) + "|")
    for row in rows:
        print("| " + " | ".join(c[2](row, impl) for c in columns) + " |")
    return rows


def column(header, fmt, field, right=True):
    return header, right, lambda row, impl: fmt % row.best[field]


LOSS = ("loss", False, lambda row, impl: row.loss.upper())
IMPLEMENTATION = ("implementation", False, lambda row, impl: row.describe(impl))
THREADS = column("threads", "%d", "threads")
RSS = column("peak RSS MB", "%.0f", "peak_rss_mb")
RATIO = ("aspo / this", True, lambda row, impl: row.ratio)
# Positions the policy pass computes per step (packed or padded); PyTorch's are padded rows.
COMPUTED = ("positions computed", True,
            lambda row, impl: "%d" % row.best.get("computed_positions_per_step",
                                                  row.best.get("positions_per_step",
                                                               row.best.get("tokens_per_step", 0))))
# The backend's peak allocation (aspo's; PyTorch reports one on a GPU only).
DEVICE_MB = ("peak device MB", True, lambda row, impl: "%.0f" % row.best["peak_device_mb"]
             if row.best.get("peak_device_mb") is not None else "")
CORE = column("OpenBLAS core", "%s", "openblas_core", right=False)


def rate(header, fmt, field):
    return header, True, lambda row, impl: (fmt + " (" + fmt + ")") % (row.best[field],
                                                                       row.median)


def hf_peft(r):
    return "transformers %s + PEFT %s" % (r["transformers"], r["peft"])


def train(lines):
    compare(lines, "train_tokens_per_s",
            lambda r: hf_peft(r) if r["impl"] == "hf" else "plain PyTorch",
            [LOSS, IMPLEMENTATION, THREADS, rate("tokens/s best (median)", "%.0f",
                                                 "train_tokens_per_s"),
             COMPUTED, column("s/step", "%.3f", "step_s_mean"),
             column("CPU s/step", "%.3f", "cpu_s_per_step"), RSS, DEVICE_MB, RATIO, CORE])


def llava(lines):
    compare(lines, "text_tokens_per_s", hf_peft,
            [LOSS, IMPLEMENTATION, THREADS, rate("text tokens/s best (median)", "%.0f",
                                                 "text_tokens_per_s"),
             column("positions/s", "%.0f", "positions_per_s"), COMPUTED,
             column("s/step", "%.3f", "step_s_mean"),
             column("vision s/step", "%.3f", "vision_s_per_step"),
             column("CPU s/step", "%.3f", "cpu_s_per_step"), RSS, DEVICE_MB, RATIO, CORE])


def clip(lines):
    a = max((r for r in lines if r["config"] == "aspo"), key=lambda r: r["images_per_s"])
    print("CLIP vision tower %s: hidden %d, %d layers, %d heads, ffn %d, image %d, patch %d "
          "(%d tokens), batch %d, hidden state -2, f32" % (a["preset"], a["hidden"], a["layers"],
          a["heads"], a["ffn"], a["image"], a["patch"], a["tokens"], a["batch"]))
    print()
    rows = compare(lines, "images_per_s",
                   lambda r: "transformers %s CLIPVisionModel" % r["transformers"],
                   [IMPLEMENTATION, THREADS, rate("images/s best (median)", "%.2f",
                                                  "images_per_s"),
                    column("s/batch", "%.3f", "batch_s_mean"),
                    column("CPU s/batch", "%.3f", "cpu_s_per_batch"),
                    column("GFLOP/s", "%.1f", "gflops"), RSS, RATIO, CORE])
    best = {row.cfg: row.best["images_per_s"] for row in rows}
    if "torch" not in best:
        return
    fastest = max((c for c in best if c != "aspo"), key=best.get)
    print()
    print("ratio: aspo / torch = %.2f (%.2f vs %.2f images/s); aspo / fastest torch setup (%s) = "
          "%.2f; %d threads, best of %d rounds" % (
              best["aspo"] / best["torch"], best["aspo"], best["torch"], fastest,
              best["aspo"] / best[fastest], a["threads"],
              sum(r["config"] == "aspo" for r in lines)))


def matmul(lines):
    rows, torch, cfg = {}, {}, {}
    for r in lines:
        if r.get("config"):
            cfg.update(r)
        elif r["src"] == "aspo":
            rows[r["name"]] = r
        else:
            torch[r["name"]] = r

    def num(v):
        return f"{v:.1f}" if v is not None else "n/a"

    def ratio(a, b):
        return f"{a / b:.2f}" if a is not None and b else "n/a"

    core = cfg.get("openblas_core", "?")
    print(f"aspo: {cfg.get('openblas_config', '?')}, threads {cfg.get('openblas_threads')}; "
          f"torch {cfg.get('torch_version', 'n/a')} (threads {cfg.get('torch_threads', 'n/a')}, "
          f"OpenBLAS threads {cfg.get('torch_blas_threads')}, core {cfg.get('torch_blas_core')})")
    print()
    print("| shape (M x K x N) | op layer GFLOP/s | direct sgemm GFLOP/s | op/direct "
          "| PyTorch GFLOP/s | op/PyTorch | OpenBLAS core |")
    print("|---|---:|---:|---:|---:|---:|---|")
    for name, r in rows.items():
        t = torch.get(name, {}).get("torch_gflops")
        op, direct = r.get("op_gflops"), r["sgemm_gflops"]
        shape = f"{name.split()[0]} {r['M']}x{r['K']}x{r['N']}" + (" (W^T)" if r["b"] == "W^T"
                                                                   else "")
        print(f"| {shape} | {num(op)} | {num(direct)} | {ratio(op, direct)} | {num(t)} "
              f"| {ratio(op, t)} | {core} |")


TABLES = {"train": train, "llava": llava, "clip": clip, "matmul": matmul}

if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in TABLES:
        sys.exit("usage: bench_table.py %s RESULTS" % "|".join(TABLES))
    TABLES[sys.argv[1]](read_lines(sys.argv[2]))
