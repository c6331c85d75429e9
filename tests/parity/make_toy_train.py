#!/usr/bin/env python3
"""Writes the toy LoRA training fixtures that tests/test_train.c reproduces in C.

A two-layer MLP (16 -> 64 -> 8, SiLU) with frozen base weights (the first layer's weight and
bias stored as bf16) and PEFT LoRA adapters (r=8, alpha=16, no dropout) on both layers is
trained for 40 steps on one fixed batch of 32 with torch.optim.AdamW, transformers'
cosine schedule with warmup (warmup_ratio 0.1) and clip_grad_norm_(max_norm 1), MSE loss,
step order as the Hugging Face Trainer: backward, clip, optimizer step, scheduler step.

Outputs (tests/fixtures/):
  toy_train_init.safetensors   base weights, LoRA A (PEFT's kaiming init, seed 0), B zeros,
                               inputs and targets; names as aspo declares them
  toy_train_reference.json     config and per-step loss, lr and grad norm
  toy_train_final.safetensors  the LoRA weights after the last step

Generated with: Python 3.11.2, torch 1.13.0a0 (Debian), transformers 4.30.2, peft 0.5.0,
safetensors 0.8.0:
  /usr/bin/python3 -m venv --system-site-packages /tmp/venv_nn
  /tmp/venv_nn/bin/pip install safetensors transformers==4.30.2
  /tmp/venv_nn/bin/pip install --no-deps peft==0.5.0 accelerate==0.21.0
  /tmp/venv_nn/bin/python tests/parity/make_toy_train.py tests/fixtures
"""
import json
import math
import os
import sys

import peft
import safetensors
import torch
import transformers
from peft import LoraConfig, get_peft_model
from safetensors.torch import save_file
from transformers import get_cosine_schedule_with_warmup

IN, HIDDEN, OUT, BATCH = 16, 64, 8, 32
CONFIG = {
    "steps": 40,
    "lr": 2e-2,
    "warmup_ratio": 0.1,
    "weight_decay": 0.01,
    "beta1": 0.9,
    "beta2": 0.999,
    "eps": 1e-8,
    "max_grad_norm": 1.0,
    "lora_r": 8,
    "lora_alpha": 16.0,
}


def main(out_dir):
    torch.manual_seed(0)
    base = torch.nn.Sequential(
        torch.nn.Linear(IN, HIDDEN), torch.nn.SiLU(), torch.nn.Linear(HIDDEN, OUT)
    )
    with torch.no_grad():  # the first layer is frozen in bf16: keep exactly those values
        base[0].weight.copy_(base[0].weight.bfloat16().float())
        base[0].bias.copy_(base[0].bias.bfloat16().float())
    lora = LoraConfig(
        r=CONFIG["lora_r"], lora_alpha=CONFIG["lora_alpha"], lora_dropout=0.0,
        target_modules=["0", "2"],
    )
    model = get_peft_model(base, lora)
    layers = {"fc1": model.base_model.model[0], "fc2": model.base_model.model[2]}
    x = torch.randn(BATCH, IN)
    # Targets: the same model with random B, so LoRA can fit them exactly.
    with torch.no_grad():
        for layer in layers.values():
            layer.lora_B["default"].weight.normal_(0.0, 0.3)
        targets = model(x)
        for layer in layers.values():
            layer.lora_B["default"].weight.zero_()

    def lora_weights():
        out = {}
        for name, layer in layers.items():
            out[f"{name}.lora_A.weight"] = layer.lora_A["default"].weight.detach().clone()
            out[f"{name}.lora_B.weight"] = layer.lora_B["default"].weight.detach().clone()
        return out

    init = {
        "fc1.weight": layers["fc1"].weight.detach().bfloat16(),
        "fc1.bias": layers["fc1"].bias.detach().bfloat16(),
        "fc2.weight": layers["fc2"].weight.detach().clone(),
        "fc2.bias": layers["fc2"].bias.detach().clone(),
        "inputs": x,
        "targets": targets,
        **lora_weights(),
    }
    save_file({k: v.contiguous() for k, v in init.items()},
              os.path.join(out_dir, "toy_train_init.safetensors"))

    trainable = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(
        trainable, lr=CONFIG["lr"], betas=(CONFIG["beta1"], CONFIG["beta2"]),
        eps=CONFIG["eps"], weight_decay=CONFIG["weight_decay"], foreach=False,
    )
    steps = CONFIG["steps"]
    warmup = math.ceil(steps * CONFIG["warmup_ratio"])
    sched = get_cosine_schedule_with_warmup(opt, warmup, steps)
    losses, norms, lrs = [], [], []
    for _ in range(steps):
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x), targets)
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(trainable, CONFIG["max_grad_norm"])
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
        losses.append(loss.item())
        norms.append(norm.item())
    save_file(lora_weights(), os.path.join(out_dir, "toy_train_final.safetensors"))

    reference = {
        "generated_by": "tests/parity/make_toy_train.py",
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                     "peft": peft.__version__, "safetensors": safetensors.__version__},
        "config": {**CONFIG, "warmup_steps": warmup, "batch": BATCH},
        "loss": losses,
        "lr": lrs,
        "grad_norm": norms,
    }
    with open(os.path.join(out_dir, "toy_train_reference.json"), "w") as f:
        json.dump(reference, f, indent=1)
        f.write("\n")
    print(f"loss {losses[0]:.6f} -> {losses[-1]:.6f}; grad norm {norms[0]:.4f} -> "
          f"{norms[-1]:.4f}; clipped at {sum(n > CONFIG['max_grad_norm'] for n in norms)} steps")


if __name__ == "__main__":
    default_dir = os.path.join(os.path.dirname(__file__), "..", "fixtures")
    main(sys.argv[1] if len(sys.argv) > 1 else default_dir)
