"""Model FLOPs of one preference-training step, the dense peak of known GPUs, and what the two
give: achieved TFLOP/s, MFU and the extrapolated LLaVA-1.5-7B epoch. The same formula and
table are written in C in aspo/train/bench.c (bench_step_flops, bench_peak_tflops); change both
together, the FLOPs per step that aspo and bench/train_step_torch.py print must be equal.

Imported, not run. Standard library only.

One step (as `aspo bench` and bench/train_step_torch.py take it) on S = 2 * pairs sequences
of T positions, a LLaMA of L layers, width C, K = kv_heads * C / heads, intermediate F,
vocabulary V, LoRA rank r on the 7 linears of every layer:

    N  = L * (2*C*C + 2*C*K + 3*C*F) + V*C      frozen matmul weights (LM head included;
                                                the embedding is a lookup, no FLOPs)
    Nl = L * r * (2*(C+C) + 2*(C+K) + 3*(C+F))  LoRA weights, r * (in + out) per linear
    A  = L * 2*T*T*C                            causal attention forward per sequence: QK^T
                                                and AV are 2*T*T*C each over the full TxT,
                                                the causal half of that is counted

    reference forward (adapters off, no tape)   2*N*T           + A
    policy forward                              2*N*T + 2*Nl*T  + A
    policy backward                             2*N*T + 4*Nl*T  + 2*A
        (input gradients of every matmul, the frozen ones and the LM head included; LoRA's
         weight and input gradients; attention backward ~2x its forward)

    step = S * (6*N*T + 6*Nl*T + 4*A)

Left out: norms, RoPE, softmax, SiLU, log-softmax, the loss and AdamW (O(N/C) per token),
the recomputation of --checkpointing (MFU counts the model's work, not the hardware's), and
for LLaVA the frozen vision tower and projector.
"""
import re


LLAVA_7B_LAYERS = 32   # LLaVA-1.5-7B's language model: Vicuna-7B, hidden 4096, ffn 11008
LLAVA_7B_VOCAB = 32064
EPOCH_PAIRS = 16384    # the 16K preference pairs of one ASPO epoch

# Dense (no sparsity) tensor-core peaks in TFLOP/s from NVIDIA's data sheets, by dtype. The
# first entry whose words occur in the device name wins (the model as a whole word: "A100"
# is not in "RTX A1000"; the variant starting a word: "SXM" is in "SXM5"), so the longer
# names come first.
# f16 peaks equal bf16 ones on these cards (f32 accumulation). f32 is the plain (non-TF32)
# rate. Unknown cards give None: no MFU.
PEAKS = [
    (("H100", "NVL"), {}),
    (("H100", "PCIe"), {"bf16": 756.0, "f16": 756.0, "f32": 51.0}),
    (("H100", "HBM3"), {"bf16": 989.4, "f16": 989.4, "f32": 67.0}),
    (("H100", "SXM"), {"bf16": 989.4, "f16": 989.4, "f32": 67.0}),
    (("H200", "NVL"), {}),
    (("H200",), {"bf16": 989.4, "f16": 989.4, "f32": 67.0}),
    (("A100",), {"bf16": 312.0, "f16": 312.0, "f32": 19.5}),
    (("L20",), {"bf16": 119.5, "f16": 119.5}),
    (("L40S",), {"bf16": 362.0, "f16": 362.0}),
]


def step_flops(layers, dim, heads, kv_heads, ffn, vocab, rank, sequences, positions):
    """Model FLOPs of one step on `sequences` sequences of `positions` positions each."""
    C, F, L, T = dim, ffn, layers, positions
    K = (kv_heads or heads) * (dim // heads)
    N = L * (2 * C * C + 2 * C * K + 3 * C * F) + vocab * C
    Nl = L * rank * (2 * (C + C) + 2 * (C + K) + 3 * (C + F))
    A = L * 2 * T * T * C
    return sequences * (6 * N * T + 6 * Nl * T + 4 * A)


def peak_tflops(device_name, dtype):
    """The card's dense peak for dtype (f32, bf16, f16), or None when not in PEAKS."""
    for (model, *variant), peaks in PEAKS:
        if (re.search(r"(?<![0-9a-z])%s(?![0-9a-z])" % re.escape(model), device_name, re.I) and
                all(re.search(r"(?<![0-9a-z])" + re.escape(v), device_name, re.I)
                    for v in variant)):
            return peaks.get(dtype)
    return None


def rates(a, positions, step_s, peak):
    """The JSON fields of a run: model_flops_per_step, achieved_tflops, peak_tflops, mfu and
    epoch_s_7b_16k (one epoch of EPOCH_PAIRS pairs through the full LLaVA-1.5-7B: 32 layers,
    vocabulary 32064, this run's width, rank and positions, at this run's achieved rate).
    a: the script's arguments (layers, dim, heads, kv_heads, ffn, vocab, rank, pairs);
    peak: TFLOP/s or None."""
    flops = step_flops(a.layers, a.dim, a.heads, getattr(a, "kv_heads", 0), a.ffn, a.vocab,
                       a.rank, 2 * a.pairs, positions)
    achieved = flops / step_s
    pair_7b = step_flops(LLAVA_7B_LAYERS, a.dim, a.heads, getattr(a, "kv_heads", 0), a.ffn,
                         LLAVA_7B_VOCAB, a.rank, 2, positions)
    return {"model_flops_per_step": flops,
            "achieved_tflops": round(achieved / 1e12, 3),
            "peak_tflops": peak,
            "mfu": round(achieved / 1e12 / peak, 4) if peak else None,
            "epoch_s_7b_16k": round(EPOCH_PAIRS * pair_7b / achieved, 1)}
