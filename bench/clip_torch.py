#!/usr/bin/python3
"""bench_clip.c's work in PyTorch: transformers' CLIPVisionModel, output_hidden_states, the
hidden state of layer -2 (LLaVA's), f32 under no_grad, printed as one JSON line like
bench_clip's.

    PYTHON bench/clip_torch.py [--preset vit-l-14-336|vit-b-16-224|vit-b-32-224] [--hidden N]
        [--layers N] [--heads N] [--ffn N] [--image N] [--patch N] [--batch N] [--steps N]
        [--warmup N] [--threads N] [--seed N]

Needs torch and transformers: Debian's /usr/bin/python3 has python3-torch (1.13) but not
transformers, so run it with a venv that adds transformers 4.44.2 to Debian's torch (the one
bench/train_step_torch.py describes; tests/parity's /tmp/venv_llama is such a venv):
    python3 -m venv --system-site-packages VENV
    VENV/bin/pip install transformers==4.44.2 tokenizers==0.19.1 huggingface-hub==0.24.6 safetensors
Eager attention (torch 1.13 has no scaled_dot_product_attention). Weights are transformers'
random initialisation (std 0.02, LayerNorm 1/0), like bench_clip's. Imports
bench/bench_timing.py from beside it. A benchmark, not a test: it never asserts.
"""
import argparse
import json
import sys
import time

import torch

from bench_timing import blas_fields, peak_rss_mb, set_threads, time_calls

PRESETS = {  # hidden, layers, heads, ffn, image, patch (bench_clip.c's table)
    "vit-l-14-336": (1024, 24, 16, 4096, 336, 14),
    "vit-b-16-224": (768, 12, 12, 3072, 224, 16),
    "vit-b-32-224": (768, 12, 12, 3072, 224, 32),
}


def gflop_per_image(C, L, F, image, P):
    """bench_clip.c's count: the matmuls' multiply-adds x2."""
    N = (image // P) ** 2
    T = N + 1
    return (2 * N * 3 * P * P * C + L * (2 * T * C * (4 * C + 2 * F) + 4 * T * T * C)) * 1e-9


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="vit-l-14-336", choices=sorted(PRESETS))
    for name in ("hidden", "layers", "heads", "ffn", "image", "patch"):
        p.add_argument("--" + name, type=int, default=None)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--threads", type=int, default=0, help="default: torch's own choice")
    p.add_argument("--seed", type=int, default=1)
    a = p.parse_args()
    C, L, H, F, image, P = [v if v is not None else d for v, d in zip(
        (a.hidden, a.layers, a.heads, a.ffn, a.image, a.patch), PRESETS[a.preset])]

    try:
        import transformers
        from transformers import CLIPVisionConfig, CLIPVisionModel
    except ImportError:
        sys.exit("clip_torch.py: transformers is not importable by %s; run it with a venv that "
                 "has transformers (see this script's docstring)" % sys.executable)
    blas, _ = set_threads(torch, a.threads)
    torch.manual_seed(a.seed)
    t0 = time.perf_counter()
    cfg = CLIPVisionConfig(hidden_size=C, intermediate_size=F, num_hidden_layers=L,
                           num_attention_heads=H, image_size=image, patch_size=P,
                           hidden_act="quick_gelu", layer_norm_eps=1e-5)
    cfg._attn_implementation = "eager"
    model = CLIPVisionModel(cfg).eval()
    load_s = time.perf_counter() - t0
    pixels = torch.rand(a.batch, 3, image, image) * 4 - 2  # roughly normalised CLIP pixels

    tokens = (image // P) ** 2 + 1

    def forward():
        with torch.no_grad():
            out = model(pixel_values=pixels, output_hidden_states=True)
        assert out.hidden_states[-2].shape == (a.batch, tokens, C)  # LLaVA's feature layer

    timed = time_calls(forward, a.warmup, a.steps)
    g = gflop_per_image(C, L, F, image, P)
    print(json.dumps({
        "impl": "torch", "preset": a.preset, "hidden": C, "layers": L, "heads": H, "ffn": F,
        "image": image, "patch": P, "tokens": tokens, "batch": a.batch,
        "steps": a.steps, "threads": torch.get_num_threads(),
        "params": sum(t.numel() for t in model.parameters()),
        "images_per_s": round(a.batch / timed.mean, 3), **timed.fields("batch"),
        "cpu_s_per_batch": round(timed.cpu, 4), "gflop_per_image": round(g, 3),
        "gflops": round(g * a.batch / timed.mean, 2), "load_s": round(load_s, 2),
        "peak_rss_mb": peak_rss_mb(),
        "torch_version": torch.__version__, "transformers": transformers.__version__,
        "openblas_threads": blas.openblas_get_num_threads() if blas else None,
        **blas_fields(blas),
    }), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
