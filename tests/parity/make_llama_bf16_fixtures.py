#!/usr/bin/env python3
"""Writes what transformers + PEFT compute for the tiny LLaMA fixture in bf16 mixed precision,
for tests/test_llama.c's half-precision-activation parity (aspo's --activation-dtype bf16).

The setting is what a PyTorch user trains with: the base model loaded with
torch_dtype=torch.bfloat16 (frozen weights and hidden states in bf16), the PEFT adapter's
weights in f32, and the forward and backward under torch.autocast(dtype=torch.bfloat16), as
HF Trainer does with bf16=True (every linear, the adapter's included, multiplies in bf16 with
f32 accumulation). Eval mode (no dropout), eager attention.

Reads tests/fixtures/llama/tiny, tiny_adapter and the inputs of tiny_outputs.safetensors
(made by make_llama_fixtures.py); writes tests/fixtures/llama/tiny_bf16_outputs.safetensors:
  logits (2,11,V) f32      the model's logits (LlamaForCausalLM returns logits.float())
  seq_logprobs (2)         sum over response positions of log_softmax(logits[t-1])[ids[t]]
  grad.<PEFT key>          d sum(seq_logprobs) / d every lora_A / lora_B (f32 parameters)
  ids, attention_mask, response_mask, position_ids   copied from tiny_outputs

Generated with the venv of make_llama_fixtures.py (Python 3.11.2, torch 1.13.0a0 from
Debian's python3-torch, transformers 4.44.2, peft 0.12.0, safetensors 0.4.4):
  /tmp/venv_llama/bin/python tests/parity/make_llama_bf16_fixtures.py tests/fixtures/llama
"""
import os
import sys

import peft
import safetensors
import safetensors.torch
import torch
import transformers
from transformers import LlamaForCausalLM


def seq_logprobs(logits, ids, response_mask):
    logp = torch.log_softmax(logits[:, :-1].float(), dim=-1)
    tok = torch.gather(logp, 2, ids[:, 1:, None])[..., 0]  # (B,T-1)
    return (tok * response_mask[:, 1:]).sum(dim=1)


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: make_llama_bf16_fixtures.py FIXTURE_DIR (tests/fixtures/llama)")
    print("torch", torch.__version__, "transformers", transformers.__version__,
          "peft", peft.__version__, "safetensors", safetensors.__version__)
    fx = sys.argv[1]
    inputs = safetensors.torch.load_file(os.path.join(fx, "tiny_outputs.safetensors"))
    ids = inputs["ids"].long()
    attention_mask = inputs["attention_mask"].long()
    response_mask = inputs["response_mask"].long()
    base = LlamaForCausalLM.from_pretrained(os.path.join(fx, "tiny"), attn_implementation="eager",
                                            torch_dtype=torch.bfloat16)
    pm = peft.PeftModel.from_pretrained(base, os.path.join(fx, "tiny_adapter"),
                                        is_trainable=True).eval()
    lora = {n: p for n, p in pm.named_parameters() if "lora_" in n}
    assert lora and all(p.dtype == torch.float32 and p.requires_grad for p in lora.values())
    assert pm.base_model.model.model.embed_tokens.weight.dtype == torch.bfloat16
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = pm(input_ids=ids, attention_mask=attention_mask).logits
    logits = logits.float()
    lp = seq_logprobs(logits, ids, response_mask)
    lp.sum().backward()
    out = {"logits": logits.detach(), "seq_logprobs": lp.detach()}
    for k in ("ids", "attention_mask", "response_mask", "position_ids"):
        out[k] = inputs[k]  # the same inputs, so the file reads like tiny_outputs
    for n, p in lora.items():
        out["grad." + n.replace(".default", "")] = p.grad.detach().clone()
    f32 = inputs["seq_logprobs"]
    print("seq_logprobs bf16", lp.tolist(), "f32", f32.tolist())
    rel = ((logits - inputs["logits"]).norm() / inputs["logits"].norm()).item()
    print(f"logits: relative difference (norm) bf16 vs f32 {rel:.3g}")
    safetensors.torch.save_file({k: v.contiguous() for k, v in out.items()},
                                os.path.join(fx, "tiny_bf16_outputs.safetensors"))


if __name__ == "__main__":
    main()
