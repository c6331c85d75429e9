#!/usr/bin/python3
"""The InstructBLIP training step of `aspo bench --model-kind instructblip` in PyTorch, as one
JSON line with the keys of aspo's.

    python bench/instructblip_step_torch.py [--loss dpo|aspo] [--device cpu|cuda]
        [--dtype f32|bf16|f16] [--layers N] [--dim N] [--heads N] [--ffn N] [--vocab N]
        [--seq N] [--prompt N] [--pairs N] [--rank N] [--unit N]
        [--vision-layers N] [--vision-dim N] [--vision-heads N] [--vision-ffn N]
        [--image-size N] [--patch-size N] [--qformer-layers N] [--qformer-dim N]
        [--queries N] [--steps N] [--warmup N] [--threads N] [--seed N]

Model: transformers' InstructBlipForConditionalGeneration with random weights of the sizes
aspo/model/tiny_instructblip.c writes: a vision encoder (qkv_bias, gelu, eps 1e-6), a Q-Former of
--qformer-layers x --qformer-dim (0 = --vision-dim) with --vision-heads heads, ffn 4 x its
width, cross-attention every 2nd layer, 512 positions, 128 word ids, and --queries query
tokens; the LLaMA as in bench/llava_step_torch.py (eager attention). A PEFT LoRA model (r,
alpha 2r, dropout 0.05) on the language model's seven linears only (the regex of
llava_step_torch.py: the Q-Former's query/key/value and the encoder's qkv stay frozen, as
aspo's "all-linear" leaves them for InstructBLIP); everything else frozen.

Data: like aspo's: each prompt is BOS then --prompt - 1 random ids, the response --seq -
--prompt random ids, EOS last; no padding. The Q-Former reads the ids that BertTokenizer
gives for aspo's instruction "Describe the image." with the vocabulary aspo writes
([CLS] describe the image . [SEP]). Images are random pixel tensors (already preprocessed:
no decoding, unlike aspo). transformers 4.44 puts the --queries projected query outputs
before the text, so the logits cover queries + text; the labels are -100 on the queries and
the prompt. Each pair's image goes in twice, once for chosen and once for rejected, as TRL's
DPOTrainer.concatenated_inputs repeats it (aspo runs the image side once per image).

Step: bench/train_step_torch.py's preference_step (reference forward with the adapters
disabled under no_grad, policy forward and backward, DPO or ASPO, clip_grad_norm_(1.0),
AdamW). vision_s_per_step: the vision encoder + Q-Former + language_projection on the 2P
images under no_grad, twice (the reference and the policy forward each run it).

Needs torch, transformers 4.44 and peft 0.12 (tested with Debian's python3-torch 1.13.1,
transformers 4.44.2 and peft 0.12.0 in the venv of bench/train_step_torch.py's docstring),
and bench/llava_step_torch.py, train_step_torch.py and bench_timing.py beside it.
A benchmark, not a test: it never asserts.
"""
import argparse
import json
import sys

import torch

from bench_timing import blas_fields, peak_rss_mb, set_threads, time_calls
from llava_step_torch import BOS, EOS, FIRST_TEXT, LORA_TARGETS
from train_step_torch import DTYPES, building, preference_step

QFORMER_VOCAB = 128  # TINY_INSTRUCTBLIP_QFORMER_VOCAB
INSTRUCTION = [2, 5, 6, 7, 8, 3]  # [CLS] describe the image . [SEP] in aspo's vocab.txt


def make_model(a):
    import transformers
    from peft import LoraConfig, get_peft_model
    vision = transformers.InstructBlipVisionConfig(
        hidden_size=a.vision_dim, intermediate_size=a.vision_ffn,
        num_hidden_layers=a.vision_layers, num_attention_heads=a.vision_heads,
        image_size=a.image_size, patch_size=a.patch_size, hidden_act="gelu",
        layer_norm_eps=1e-6, qkv_bias=True)
    qformer = transformers.InstructBlipQFormerConfig(
        vocab_size=QFORMER_VOCAB, hidden_size=a.qformer_dim, intermediate_size=4 * a.qformer_dim,
        num_hidden_layers=a.qformer_layers, num_attention_heads=a.vision_heads,
        max_position_embeddings=512, cross_attention_frequency=2,
        encoder_hidden_size=a.vision_dim, layer_norm_eps=1e-12, pad_token_id=0)
    text = transformers.LlamaConfig(
        vocab_size=a.vocab, hidden_size=a.dim, intermediate_size=a.ffn,
        num_hidden_layers=a.layers, num_attention_heads=a.heads, num_key_value_heads=a.heads,
        max_position_embeddings=max(2048, a.seq + a.queries), rms_norm_eps=1e-6,
        bos_token_id=BOS, eos_token_id=EOS, tie_word_embeddings=False)
    cfg = transformers.InstructBlipConfig(
        vision_config=vision.to_dict(), qformer_config=qformer.to_dict(),
        text_config=text.to_dict(), num_query_tokens=a.queries)
    for c in (cfg, cfg.text_config, cfg.vision_config, cfg.qformer_config):
        c._attn_implementation = "eager"
    lcfg = LoraConfig(r=a.rank, lora_alpha=2 * a.rank, lora_dropout=0.05,
                      target_modules=LORA_TARGETS)
    with building(a.device, DTYPES[a.dtype]):  # PEFT then casts the adapters to f32
        base = transformers.InstructBlipForConditionalGeneration(cfg)
        model = get_peft_model(base, lcfg)
    versions = {"transformers": transformers.__version__, "peft": sys.modules["peft"].__version__}
    return model.to(a.device), base, versions


def make_batch(a, prompt):
    """ids (2P, seq): chosen rows, then rejected (TRL's order); the Q-Former's ids (2P, 6);
    pixels (2P,3,S,S); labels (2P, Q+seq) over the queries and the text, -100 on the queries
    and the prompt."""
    g = torch.Generator().manual_seed(a.seed)
    prompts, ids, labels = [], [], []
    for _ in range(a.pairs):
        p = torch.randint(FIRST_TEXT, a.vocab, (prompt,), generator=g)
        p[0] = BOS
        prompts.append(p)
    for side in range(2):
        for i in range(a.pairs):
            r = torch.randint(FIRST_TEXT, a.vocab, (a.seq - prompt,), generator=g)
            r[-1] = EOS
            ids.append(torch.cat([prompts[i], r]))
            labels.append(torch.cat([torch.full((a.queries + prompt,), -100), r]))
    pixels = torch.randn(a.pairs, 3, a.image_size, a.image_size, generator=g)
    ids = torch.stack(ids)
    qformer_ids = torch.tensor([INSTRUCTION] * (2 * a.pairs))
    return ids, qformer_ids, torch.cat([pixels, pixels]), torch.stack(labels)


# The integer flags with their defaults (aspo bench's); the JSON line repeats the sizes.
SIZES = [("layers", 4), ("dim", 256), ("heads", 8), ("ffn", 688), ("vocab", 4096), ("seq", 256),
         ("prompt", 0), ("pairs", 2), ("rank", 16), ("unit", 16), ("vision_layers", 4),
         ("vision_dim", 256), ("vision_heads", 4), ("vision_ffn", 0), ("image_size", 112),
         ("patch_size", 14), ("qformer_layers", 2), ("qformer_dim", 0), ("queries", 8)]
RUN = [("steps", 5), ("warmup", 2), ("threads", 0), ("seed", 1)]


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--loss", choices=["dpo", "aspo"], default="dpo")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--dtype", choices=list(DTYPES), default="f32")
    p.add_argument("--blas-threads", type=int, default=0,
                   help="OpenBLAS threads (default: --threads)")
    for name, v in SIZES + RUN:
        p.add_argument("--" + name.replace("_", "-"), type=int, default=v)
    a = p.parse_args()
    a.prompt = a.prompt or a.seq // 4
    a.vision_ffn = a.vision_ffn or 4 * a.vision_dim
    a.qformer_dim = a.qformer_dim or a.vision_dim
    blas, blas_threads = set_threads(torch, a.threads, a.blas_threads)
    torch.manual_seed(a.seed)

    model, base, versions = make_model(a)
    ids, qformer_ids, pixels, labels = (t.to(a.device) for t in make_batch(a, a.prompt))
    pixels = pixels.to(DTYPES[a.dtype])
    cuda = a.device == "cuda"
    sync = torch.cuda.synchronize if cuda else None

    def logits():
        return model(input_ids=ids, qformer_input_ids=qformer_ids, pixel_values=pixels,
                     return_dict=True).logits  # (2P, Q+seq, V)

    def reference_logits():
        with model.disable_adapter():
            return logits()

    step, params = preference_step(model, logits, reference_logits, labels, a)
    t = time_calls(step, a.warmup, a.steps, sync=sync)

    # The image side timed apart, as InstructBlipForConditionalGeneration.forward runs it.
    def encode():
        with torch.no_grad():
            image = base.vision_model(pixel_values=pixels).last_hidden_state
            queries = base.query_tokens.expand(image.shape[0], -1, -1)
            mask = torch.ones(queries.shape[0], a.queries + qformer_ids.shape[1],
                              dtype=torch.long, device=image.device)
            out = base.qformer(input_ids=qformer_ids, attention_mask=mask, query_embeds=queries,
                               encoder_hidden_states=image)
            base.language_projection(out[0][:, :a.queries])

    vision = time_calls(encode, 0, a.steps, sync=sync)
    text, positions = 2 * a.pairs * a.seq, 2 * a.pairs * (a.seq + a.queries)
    out = {"src": "torch", "impl": "hf", "model_kind": "instructblip", "loss": a.loss,
           "device": torch.cuda.get_device_name() if cuda else "cpu", "dtype": a.dtype,
           **{name: getattr(a, name) for name, _ in SIZES}, "image_positions": a.queries,
           "steps": a.steps, "threads": torch.get_num_threads(),
           "blas_threads": blas_threads or None, "torch_version": torch.__version__,
           **blas_fields(blas), "trainable": sum(q.numel() for q in params),
           "params": sum(q.numel() for q in model.parameters()),
           "text_tokens_per_step": text, "positions_per_step": positions, **t.fields("step"),
           "text_tokens_per_s": round(text / t.mean, 1),
           "positions_per_s": round(positions / t.mean, 1),
           "vision_s_per_step": round(2 * vision.mean, 4), "cpu_s_per_step": round(t.cpu, 4),
           "peak_rss_mb": peak_rss_mb(),
           "peak_device_mb": round(torch.cuda.max_memory_allocated() / 2**20, 1) if cuda else None,
           "loss_first": round(t.results[0], 6), "loss_last": round(t.results[-1], 6),
           **versions}
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
