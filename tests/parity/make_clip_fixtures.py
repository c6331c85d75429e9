#!/usr/bin/env python3
"""Writes the CLIP parity fixtures that tests/test_clip.c reproduces in C.

A tiny random transformers CLIPModel (f32, eager attention):
  vision: image 32, patch 8 (16 patches + class token), hidden 32, 2 layers, 4 heads,
          intermediate 64, quick_gelu, layer_norm_eps 1e-5
  text:   vocab 100 (bos 98, eos 99 -> the "first id == eos_token_id" pooling), hidden 32,
          2 layers, 4 heads, intermediate 64, max_position_embeddings 77
  projection_dim 16, logit_scale 2.0 (not the init value, so a wrong source shows)
Every LayerNorm weight is 1 + 0.1 N(0,1) and every bias 0.1 N(0,1) (CLIP's init zeroes
them, which would hide a missing bias or norm weight).

Writes into the output directory:
  model/config.json, model/model.safetensors   CLIPModel.save_pretrained (CLIPConfig)
  vision_config.json      the bare CLIPVisionConfig (as a LLaVA vision tower directory has)
  outputs.safetensors     pixel_values (2,3,32,32) f32, input_ids (2,9) i32 (row 0 padded
                          with eos after its first eos), attention_mask (2,9) i32,
                          image_embeds (2,16), text_embeds (2,16), logits_per_image (2,2),
                          vision_hidden_0 (2,17,32) = hidden_states[0],
                          vision_hidden_m2 (2,17,32) = hidden_states[-2] (LLaVA's layer),
                          image_pooled (2,32) = pooler_output (post_layernorm of class token)

Generated with: Python 3.11.2, torch 1.13.0a0 (Debian python3-torch), transformers 4.44.2,
safetensors 0.4.4, numpy 1.24.2 (the venv of make_llama_fixtures.py):
  /tmp/venv_llama/bin/python tests/parity/make_clip_fixtures.py tests/fixtures/clip
"""
import json
import os
import sys

import torch
from safetensors.torch import save_file
from transformers import CLIPConfig, CLIPModel


def main(out):
    torch.manual_seed(0)
    cfg = CLIPConfig(
        text_config=dict(vocab_size=100, hidden_size=32, intermediate_size=64,
                         num_hidden_layers=2, num_attention_heads=4,
                         max_position_embeddings=77, bos_token_id=98, eos_token_id=99,
                         pad_token_id=1),
        vision_config=dict(image_size=32, patch_size=8, hidden_size=32, intermediate_size=64,
                           num_hidden_layers=2, num_attention_heads=4),
        projection_dim=16, logit_scale_init_value=2.0)
    cfg._attn_implementation = "eager"
    model = CLIPModel(cfg).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name and name.endswith("weight"):
                p.copy_(1 + 0.1 * torch.randn_like(p))
            elif name.endswith("bias"):
                p.copy_(0.1 * torch.randn_like(p))
    os.makedirs(out, exist_ok=True)
    model.save_pretrained(os.path.join(out, "model"), safe_serialization=True)
    with open(os.path.join(out, "vision_config.json"), "w") as f:
        json.dump(cfg.vision_config.to_dict(), f, indent=2, sort_keys=True)

    pixels = torch.randn(2, 3, 32, 32)
    ids = torch.tensor([[98, 10, 57, 33, 2, 71, 99, 99, 99],
                        [98, 5, 96, 40, 40, 12, 88, 3, 99]], dtype=torch.long)
    mask = torch.tensor([[1, 1, 1, 1, 1, 1, 1, 0, 0], [1] * 9], dtype=torch.long)
    with torch.no_grad():
        o = model(input_ids=ids, attention_mask=mask, pixel_values=pixels,
                  output_hidden_states=True)
        vh = o.vision_model_output.hidden_states
    save_file({
        "pixel_values": pixels.contiguous(),
        "input_ids": ids.to(torch.int32).contiguous(),
        "attention_mask": mask.to(torch.int32).contiguous(),
        "image_embeds": o.image_embeds.contiguous(),
        "text_embeds": o.text_embeds.contiguous(),
        "logits_per_image": o.logits_per_image.contiguous(),
        "vision_hidden_0": vh[0].contiguous(),
        "vision_hidden_m2": vh[-2].contiguous(),
        "image_pooled": o.vision_model_output.pooler_output.contiguous(),
    }, os.path.join(out, "outputs.safetensors"))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures/clip")
