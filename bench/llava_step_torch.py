#!/usr/bin/python3
"""The LLaVA training step of `aspo bench --model-kind llava` in PyTorch, as one JSON line.

    python bench/llava_step_torch.py [--loss dpo|aspo] [--device cpu|cuda] [--dtype f32|bf16|f16]
        [--layers N] [--dim N] [--heads N]
        [--ffn N] [--vocab N] [--seq N] [--prompt N] [--pairs N] [--rank N] [--unit N]
        [--vision-layers N] [--vision-dim N] [--vision-heads N] [--vision-ffn N]
        [--image-size N] [--patch-size N] [--steps N] [--warmup N] [--threads N] [--seed N]

Model: transformers' LlavaForConditionalGeneration with random weights of the same sizes as
aspo's (LLaMA text_config, CLIP vision_config with quick_gelu, vision_feature_layer -2,
"default" select strategy, GELU projector; eager attention: torch 1.13 has no SDPA), and a
PEFT LoRA model (r, alpha 2r, dropout 0.05) on q,k,v,o,gate,up,down of the language model
only; the vision tower and the projector stay frozen.

Data: like aspo's, each prompt is BOS, the image token, then --prompt - 1 random ids; the
response --seq - --prompt random ids, EOS last; no padding. Images are random pixel tensors
of --image-size (already preprocessed: no decoding, unlike aspo, which decodes PNG files).
Each pair's image goes in twice, once for chosen and once for rejected, as TRL's
DPOTrainer.concatenated_inputs repeats prompt_pixel_values (aspo encodes it once for both).

Step: reference forward with the adapters disabled under no_grad, policy forward and
backward on chosen and rejected in one batch, log-probs of the response labels (the
labels expanded over the image positions as _merge_input_ids_with_image_features does),
the DPO or ASPO loss of bench/train_step_torch.py, clip_grad_norm_(1.0), AdamW.

--device and --dtype as in bench/train_step_torch.py: the model built in --dtype (PEFT's
adapters f32), the forward passes under torch.autocast for bf16/f16 (GradScaler for f16, on
cuda), each timed step ending with torch.cuda.synchronize() on cuda.

Needs torch, transformers 4.44 and peft 0.12 (tested with Debian's python3-torch 1.13.1,
reporting 1.13.0a0, transformers 4.44.2 and peft 0.12.0 in a venv made as
bench/train_step_torch.py's docstring says), and bench/train_step_torch.py and
bench/bench_timing.py beside it.
A benchmark, not a test: it never asserts.
"""
import argparse
import json
import sys

import torch

from bench_timing import blas_fields, peak_rss_mb, set_threads, time_calls
from train_step_torch import DTYPES, building, preference_step

BOS, EOS, FIRST_TEXT = 1, 2, 3
# PEFT matches a string target_modules as a full regular expression over module names:
# the language model's seven linears, not the vision tower's q/k/v projections
# (language_model.model.layers in transformers 4.x, model.language_model.layers in 5.x).
LORA_TARGETS = (r".*language_model\.(model\.)?layers\.\d+\."
                r"(self_attn\.(q|k|v|o)_proj|mlp\.(gate|up|down)_proj)")


def make_model(a):
    import transformers
    from peft import LoraConfig, get_peft_model
    text = transformers.LlamaConfig(
        vocab_size=a.vocab, hidden_size=a.dim, intermediate_size=a.ffn,
        num_hidden_layers=a.layers, num_attention_heads=a.heads, num_key_value_heads=a.heads,
        max_position_embeddings=max(2048, a.seq + a.positions), rms_norm_eps=1e-6,
        bos_token_id=BOS, eos_token_id=EOS, tie_word_embeddings=False)
    vision = transformers.CLIPVisionConfig(
        hidden_size=a.vision_dim, intermediate_size=a.vision_ffn,
        num_hidden_layers=a.vision_layers, num_attention_heads=a.vision_heads,
        image_size=a.image_size, patch_size=a.patch_size, hidden_act="quick_gelu")
    cfg = transformers.LlavaConfig(
        vision_config=vision.to_dict(), text_config=text.to_dict(),
        image_token_index=a.vocab - 1, projector_hidden_act="gelu", vision_feature_layer=-2,
        vision_feature_select_strategy="default")
    for c in (cfg, cfg.text_config, cfg.vision_config):
        c._attn_implementation = "eager"
    lcfg = LoraConfig(r=a.rank, lora_alpha=2 * a.rank, lora_dropout=0.05,
                      target_modules=LORA_TARGETS)
    with building(a.device, DTYPES[a.dtype]):  # PEFT then casts the adapters to f32
        base = transformers.LlavaForConditionalGeneration(cfg)
        model = get_peft_model(base, lcfg)
    versions = {"transformers": transformers.__version__, "peft": sys.modules["peft"].__version__}
    return model.to(a.device), base, versions


def make_batch(a, prompt, expand):
    """ids (2P, seq+1): chosen rows, then rejected (TRL's order), or with `expand` (transformers
    5, whose LLaVA takes the processor's output) (2P, seq+N) with the image token repeated for
    its N positions; pixels (2P,3,S,S); labels (2P, seq+N) over the expanded positions, -100 on
    the prompt and the image."""
    g = torch.Generator().manual_seed(a.seed)
    image = a.vocab - 1  # the image token; text ids stay below it
    prompts, ids, labels = [], [], []
    for _ in range(a.pairs):
        p = torch.randint(FIRST_TEXT, image, (prompt + 1,), generator=g)
        p[0], p[1] = BOS, image
        if expand:
            p = torch.cat([p[:1], torch.full((a.positions,), image), p[2:]])
        prompts.append(p)
    for side in range(2):
        for i in range(a.pairs):
            r = torch.randint(FIRST_TEXT, image, (a.seq - prompt,), generator=g)
            r[-1] = EOS
            ids.append(torch.cat([prompts[i], r]))
            labels.append(torch.cat([torch.full((prompt + a.positions,), -100), r]))
    pixels = torch.randn(a.pairs, 3, a.image_size, a.image_size, generator=g)
    ids = torch.stack(ids)
    return ids, torch.ones_like(ids), torch.cat([pixels, pixels]), torch.stack(labels)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--loss", choices=["dpo", "aspo"], default="dpo")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--dtype", choices=list(DTYPES), default="f32")
    p.add_argument("--blas-threads", type=int, default=0,
                   help="OpenBLAS threads (default: --threads)")
    for name, v in [("layers", 4), ("dim", 256), ("heads", 8), ("ffn", 688), ("vocab", 4096),
                    ("seq", 256), ("prompt", 0), ("pairs", 2), ("rank", 16), ("unit", 16),
                    ("vision-layers", 4), ("vision-dim", 256), ("vision-heads", 4),
                    ("vision-ffn", 0), ("image-size", 112), ("patch-size", 14),
                    ("steps", 5), ("warmup", 2), ("threads", 0), ("seed", 1)]:
        p.add_argument("--" + name, type=int, default=v)
    a = p.parse_args()
    prompt = a.prompt or a.seq // 4
    a.vision_ffn = a.vision_ffn or 4 * a.vision_dim
    a.positions = (a.image_size // a.patch_size) ** 2
    blas, blas_threads = set_threads(torch, a.threads, a.blas_threads)
    torch.manual_seed(a.seed)

    model, base, versions = make_model(a)
    expand = int(versions["transformers"].split(".")[0]) >= 5
    ids, attn, pixels, labels = (t.to(a.device) for t in make_batch(a, prompt, expand))
    pixels = pixels.to(DTYPES[a.dtype])
    P = a.pairs
    cuda = a.device == "cuda"
    sync = torch.cuda.synchronize if cuda else None

    def logits():
        return model(input_ids=ids, pixel_values=pixels, attention_mask=attn,
                     use_cache=False).logits  # (2P, seq+N, V)

    def reference_logits():
        with model.disable_adapter():
            return logits()

    step, params = preference_step(model, logits, reference_logits, labels, a)
    t = time_calls(step, a.warmup, a.steps, sync=sync)

    # The image side timed apart, as a step runs it twice (reference and policy forward,
    # each on all 2P images): the tower with all hidden states, as
    # LlavaForConditionalGeneration.forward asks for them, layer -2 without CLS, the projector.
    parts = base if hasattr(base, "vision_tower") else base.model  # transformers 5: .model

    def encode():
        with torch.no_grad():
            hidden = parts.vision_tower(pixels, output_hidden_states=True).hidden_states[-2]
            parts.multi_modal_projector(hidden[:, 1:])

    vision = time_calls(encode, 0, a.steps, sync=sync)
    text_tokens, positions = 2 * P * a.seq, 2 * P * (a.seq + a.positions)
    out = {"src": "torch", "impl": "hf", "model_kind": "llava", "loss": a.loss,
           "device": torch.cuda.get_device_name() if cuda else "cpu", "dtype": a.dtype,
           "layers": a.layers, "dim": a.dim, "heads": a.heads, "ffn": a.ffn, "vocab": a.vocab,
           "seq": a.seq, "prompt": prompt, "pairs": a.pairs, "rank": a.rank,
           "vision_layers": a.vision_layers, "vision_dim": a.vision_dim,
           "vision_heads": a.vision_heads, "vision_ffn": a.vision_ffn,
           "image_size": a.image_size, "patch_size": a.patch_size,
           "image_positions": a.positions, "steps": a.steps,
           "threads": torch.get_num_threads(), "blas_threads": blas_threads or None,
           "torch_version": torch.__version__, **blas_fields(blas),
           "trainable": sum(q.numel() for q in params),
           "params": sum(q.numel() for q in model.parameters()),
           "text_tokens_per_step": text_tokens, "positions_per_step": positions,
           **t.fields("step"),
           "text_tokens_per_s": round(text_tokens / t.mean, 1),
           "positions_per_s": round(positions / t.mean, 1),
           "vision_s_per_step": round(2 * vision.mean, 4),
           "cpu_s_per_step": round(t.cpu, 4), "peak_rss_mb": peak_rss_mb(),
           "peak_device_mb": round(torch.cuda.max_memory_allocated() / 2**20, 1) if cuda else None,
           "loss_first": round(t.results[0], 6), "loss_last": round(t.results[-1], 6)}
    out.update(versions)
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
