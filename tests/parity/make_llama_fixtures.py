#!/usr/bin/env python3
"""Writes the LLaMA + PEFT LoRA parity fixtures that tests/test_llama.c reproduces in C.

Two tiny random LlamaForCausalLM checkpoints (eager attention, f32 compute), each with a
PEFT LoRA adapter whose B is non-zero (init_lora_weights=False keeps nn.Linear's kaiming
init for both A and B):

  tiny/          hidden 32, intermediate 48, 3 layers, 4 heads, 2 kv heads (GQA), vocab
                 96, rope_theta 10000, untied lm_head; f32, one model.safetensors
  tiny_adapter/  r=4, alpha=8, dropout 0.05, target_modules="all-linear" (PEFT expands it
                 to the seven projections, not lm_head)
  tied/          hidden 32, intermediate 48, 2 layers, 4 heads, 1 kv head, vocab 80,
                 tie_word_embeddings, rope_scaling linear x2, rope_theta 500, eps 1e-5;
                 stored in bf16 and sharded (max_shard_size 16KB) so the index path is
                 used; the outputs are computed in f32 from the bf16-rounded weights
  tied_adapter/  r=2, alpha=4, use_rslora, target_modules ["q_proj", "v_proj", "down_proj"]

Norm weights are randomised (1 + 0.1 N(0,1)) so a wrong norm weight shows; initializer_range
0.1 makes attention far from uniform.

Inputs (both models): ids (2,11) i32, row 1 right-padded with 3 pad tokens (attention_mask
0), response_mask marking the response tokens (row 0: 4..10, row 1: 3..7). The tied model
runs with position_ids = 3..13 (exercises explicit positions and linear scaling).

Outputs, in <name>_outputs.safetensors:
  ids, attention_mask, response_mask, position_ids (i32)
  logits (2,11,V)          adapter on, model.eval()
  base_logits (2,11,V)     with model.disable_adapter()
  bf16_logits (2,11,V)     adapter on, frozen weights rounded to bf16 (aspo's bf16 storage)
  seq_logprobs (2)         sum over response positions t of log_softmax(logits[t-1])[ids[t]]
  grad.<PEFT key>          d sum(seq_logprobs) / d every lora_A / lora_B (PEFT key names)

Generated with: Python 3.11.2, torch 1.13.0a0 (Debian python3-torch), transformers 4.44.2,
peft 0.12.0, accelerate 0.33.0, safetensors 0.4.4, tokenizers 0.19.1,
huggingface_hub 0.24.6, numpy 1.24.2, Jinja2 3.1.6:
  /usr/bin/python3 -m venv --system-site-packages /tmp/venv_llama
  /tmp/venv_llama/bin/pip install transformers==4.44.2 safetensors==0.4.4 \
      tokenizers==0.19.1 huggingface_hub==0.24.6 psutil pyyaml tqdm Jinja2==3.1.6
  /tmp/venv_llama/bin/pip install --no-deps peft==0.12.0 accelerate==0.33.0
  /tmp/venv_llama/bin/python tests/parity/make_llama_fixtures.py tests/fixtures/llama
(--no-deps: peft/accelerate would otherwise pull a newer torch; Jinja2 is for the model
card PEFT writes beside the adapter.)

Check mode, for what test_llama writes when given an export dir (argv[2]):
  python make_llama_fixtures.py --check-exports tests/fixtures/llama EXPORT_DIR
loads EXPORT_DIR/tiny_adapter (written by aspo) with PeftModel.from_pretrained on the
fixture base model, and EXPORT_DIR/{tiny,tied}_{merged,sharded} (aspo's merges, f32, one
file or ~8 KB shards with an index) with LlamaForCausalLM.from_pretrained, and compares
their logits with the fixture's; exit status 1 when any differs by 1e-4 or more.
"""
import json
import os
import shutil
import sys

import peft
import safetensors
import safetensors.torch
import torch
import transformers
from transformers import LlamaConfig, LlamaForCausalLM

B, T, PAD = 2, 11, 0

MODELS = {
    "tiny": dict(
        config=dict(hidden_size=32, intermediate_size=48, num_hidden_layers=3,
                    num_attention_heads=4, num_key_value_heads=2, vocab_size=96,
                    max_position_embeddings=64, rope_theta=10000.0, rms_norm_eps=1e-6,
                    tie_word_embeddings=False, initializer_range=0.1,
                    bos_token_id=1, eos_token_id=2, pad_token_id=PAD),
        lora=dict(r=4, lora_alpha=8, lora_dropout=0.05, target_modules="all-linear"),
        dtype=torch.float32, shard=None, position_offset=0),
    "tied": dict(
        config=dict(hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                    num_attention_heads=4, num_key_value_heads=1, vocab_size=80,
                    max_position_embeddings=64, rope_theta=500.0, rms_norm_eps=1e-5,
                    rope_scaling={"type": "linear", "factor": 2.0},
                    tie_word_embeddings=True, initializer_range=0.1,
                    bos_token_id=1, eos_token_id=2, pad_token_id=PAD),
        lora=dict(r=2, lora_alpha=4, lora_dropout=0.0, use_rslora=True,
                  target_modules=["q_proj", "v_proj", "down_proj"]),
        dtype=torch.bfloat16, shard="16KB", position_offset=3),
}


def make_inputs(vocab, gen):
    ids = torch.randint(3, vocab, (B, T), generator=gen)
    attention_mask = torch.ones(B, T, dtype=torch.long)
    ids[1, 8:] = PAD
    attention_mask[1, 8:] = 0
    response_mask = torch.zeros(B, T, dtype=torch.long)
    response_mask[0, 4:11] = 1
    response_mask[1, 3:8] = 1
    return ids, attention_mask, response_mask


def seq_logprobs(logits, ids, response_mask):
    logp = torch.log_softmax(logits[:, :-1].float(), dim=-1)
    tok = torch.gather(logp, 2, ids[:, 1:, None])[..., 0]  # (B,T-1)
    return (tok * response_mask[:, 1:]).sum(dim=1)


def peft_key(name):
    # PEFT's saved key: the adapter name ("default") dropped from the module path.
    return name.replace(".default", "")


def make_model(name, spec, out_dir, gen_seed):
    torch.manual_seed(gen_seed)
    config = LlamaConfig(**spec["config"], attn_implementation="eager")
    model = LlamaForCausalLM(config).eval()
    with torch.no_grad():
        for n, p in model.named_parameters():
            if n.endswith("norm.weight"):
                p.copy_(1.0 + 0.1 * torch.randn_like(p))
            # Round to the storage dtype so the f32 outputs use exactly the saved weights.
            p.copy_(p.to(spec["dtype"]).to(torch.float32))
    model_dir = os.path.join(out_dir, name)
    shutil.rmtree(model_dir, ignore_errors=True)
    save = model if spec["dtype"] == torch.float32 else \
        LlamaForCausalLM(config).to(spec["dtype"])
    if save is not model:
        save.load_state_dict({k: v.to(spec["dtype"]) for k, v in model.state_dict().items()})
    kwargs = {"max_shard_size": spec["shard"]} if spec["shard"] else {}
    save.save_pretrained(model_dir, safe_serialization=True, **kwargs)

    lcfg = peft.LoraConfig(task_type="CAUSAL_LM", init_lora_weights=False, **spec["lora"])
    pm = peft.get_peft_model(model, lcfg).eval()
    adapter_dir = os.path.join(out_dir, name + "_adapter")
    shutil.rmtree(adapter_dir, ignore_errors=True)
    pm.save_pretrained(adapter_dir)
    # A relative base path keeps the fixture free of this machine's directories; PEFT
    # writes target_modules from a set, sorted here so reruns give the same file.
    cfg_path = os.path.join(adapter_dir, "adapter_config.json")
    with open(cfg_path) as f:
        acfg = json.load(f)
    acfg["base_model_name_or_path"] = name
    acfg["target_modules"] = sorted(acfg["target_modules"])
    with open(cfg_path, "w") as f:
        json.dump(acfg, f, indent=2, sort_keys=True)
    with open(os.path.join(adapter_dir, "README.md"), "w") as f:
        f.write("PEFT LoRA adapter for the tiny random fixture model; see "
                "tests/parity/make_llama_fixtures.py.\n")

    gen = torch.Generator().manual_seed(gen_seed + 100)
    ids, attention_mask, response_mask = make_inputs(config.vocab_size, gen)
    pos = torch.arange(T)[None].expand(B, T) + spec["position_offset"]
    kw = dict(input_ids=ids, attention_mask=attention_mask)
    if spec["position_offset"]:
        kw["position_ids"] = pos
    out = {}
    with torch.no_grad(), pm.disable_adapter():
        out["base_logits"] = pm(**kw).logits.float()
    logits = pm(**kw).logits.float()
    lp = seq_logprobs(logits, ids, response_mask)
    lp.sum().backward()
    out["logits"] = logits.detach()
    out["seq_logprobs"] = lp.detach()
    for n, p in pm.named_parameters():
        if "lora_" in n:
            out["grad." + peft_key(n)] = p.grad.detach().clone()
    # What bf16 storage of the frozen weights computes (activations and LoRA in f32).
    with torch.no_grad():
        for n, p in pm.named_parameters():
            if "lora_" not in n:
                p.copy_(p.to(torch.bfloat16).to(torch.float32))
        out["bf16_logits"] = pm(**kw).logits.float()
    out["ids"] = ids.to(torch.int32)
    out["attention_mask"] = attention_mask.to(torch.int32)
    out["response_mask"] = response_mask.to(torch.int32)
    out["position_ids"] = pos.to(torch.int32).contiguous()
    safetensors.torch.save_file({k: v.contiguous() for k, v in out.items()},
                                os.path.join(out_dir, name + "_outputs.safetensors"))
    print(f"{name}: seq_logprobs {lp.tolist()}")


def exported_logits_diff(model, out):
    kw = dict(input_ids=out["ids"].long(), attention_mask=out["attention_mask"].long())
    if out["position_ids"][0, 0] != 0:
        kw["position_ids"] = out["position_ids"].long()
    with torch.no_grad():
        return (model.eval()(**kw).logits - out["logits"]).abs().max().item()


def check_exports(fixture_dir, export_dir):
    worst = 0.0
    for name in MODELS:
        out = safetensors.torch.load_file(os.path.join(fixture_dir, name + "_outputs.safetensors"))
        if name == "tiny":
            base = LlamaForCausalLM.from_pretrained(os.path.join(fixture_dir, name),
                                                    attn_implementation="eager",
                                                    torch_dtype=torch.float32)
            pm = peft.PeftModel.from_pretrained(base, os.path.join(export_dir, "tiny_adapter"))
            d = exported_logits_diff(pm, out)
            print(f"PEFT loads aspo's tiny_adapter: max |logits - fixture| = {d:.3g}")
            worst = max(worst, d)
        for kind in ("merged", "sharded"):
            merged = LlamaForCausalLM.from_pretrained(
                os.path.join(export_dir, f"{name}_{kind}"), attn_implementation="eager")
            d = exported_logits_diff(merged, out)
            print(f"transformers loads aspo's {name}_{kind} ({merged.dtype}, tied "
                  f"{merged.config.tie_word_embeddings}): max |logits - fixture| = {d:.3g}")
            worst = max(worst, d)
    return 0 if worst < 1e-4 else 1


def main():
    if len(sys.argv) == 4 and sys.argv[1] == "--check-exports":
        sys.exit(check_exports(sys.argv[2], sys.argv[3]))
    if len(sys.argv) != 2:
        sys.exit("usage: make_llama_fixtures.py OUT_DIR | --check-exports FIXTURE_DIR EXPORT_DIR")
    print("torch", torch.__version__, "transformers", transformers.__version__,
          "peft", peft.__version__, "safetensors", safetensors.__version__)
    out_dir = sys.argv[1]
    os.makedirs(out_dir, exist_ok=True)
    for i, (name, spec) in enumerate(MODELS.items()):
        make_model(name, spec, out_dir, 1000 + 17 * i)


if __name__ == "__main__":
    main()
