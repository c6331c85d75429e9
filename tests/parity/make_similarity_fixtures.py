#!/usr/bin/env python3
"""Writes the fixtures that tests/test_similarity.c reproduces in C: ASPO's per-unit image
similarities S_i = cosine(CLIP text features of unit i, CLIP image features) as
transformers' CLIPModel.get_text_features / get_image_features give them.

A tiny random transformers CLIPModel (f32, eager attention):
  text:   vocab 4514 (bos 4512 "<|startoftext|>", eos 4513 "<|endoftext|>": the vocabulary
          of tests/fixtures/clip_tokenizer, copied here), hidden 16, 2 layers, 2 heads,
          intermediate 32, max_position_embeddings 77 (the token table is most of the file;
          hidden 16 keeps the fixture small)
  vision: image 32, patch 8, hidden 32, 2 layers, 4 heads, intermediate 64
  projection_dim 16, quick_gelu, layer_norm_eps 1e-5
Every LayerNorm weight is 1 + 0.1 N(0,1) and every bias 0.1 N(0,1) (CLIP's init zeroes
them, which would hide a missing bias or norm weight).

Texts are tokenized by the slow CLIPTokenizer (ftfy not installed, as the clip_tokenizer
fixtures were made) with truncation=True, max_length=77, and each text's features come
from its own unpadded forward. S is computed in float64 from the float32 features.

Writes into the output directory:
  model/config.json, model/model.safetensors   CLIPModel.save_pretrained
  vocab.json, merges.txt   copied from tests/fixtures/clip_tokenizer
  cases.json       {"texts": [...], "ids": [[...] per text], "S": [[per text] per image]}
  tensors.safetensors   pixel_values (2,3,32,32) f32, image_features (2,16),
                        text_features (n,16)

Generated with: Python 3.11.2, torch 1.13.0a0 (Debian python3-torch), transformers 4.44.2,
safetensors 0.4.4, numpy 1.24.2 (the venv of make_llama_fixtures.py):
  /tmp/venv_llama/bin/python tests/parity/make_similarity_fixtures.py tests/fixtures/similarity
"""
import json
import os
import shutil
import sys

import torch
from safetensors.torch import save_file
from transformers import CLIPConfig, CLIPModel, CLIPTokenizer

TEXTS = [
    "A dog runs on the grass.",
    "The  CAT sat\ton the\nMAT, Next To  a RED Ball!",  # upper case, odd whitespace
    "",  # an empty unit: CLIPTokenizer gives <|startoftext|> <|endoftext|>
    # over 77 tokens: truncation keeps the first 75 and the end token
    " ".join(["there is a small red car parked near the old house by the river."] * 8),
    "What color is the bus? It is yellow.",
    "Café au lait, naïve façade: 3.5 km away.",
    "before <|endoftext|> after",  # a spelled end token: pooling stops at the first one
    "two people are playing frisbee in the park",
    "1. The image shows a kitchen with a white refrigerator.",
]


def main(out):
    here = os.path.dirname(os.path.abspath(__file__))
    tok_dir = os.path.join(here, "..", "fixtures", "clip_tokenizer")
    os.makedirs(out, exist_ok=True)
    for f in ("vocab.json", "merges.txt"):
        shutil.copyfile(os.path.join(tok_dir, f), os.path.join(out, f))
    tok = CLIPTokenizer(os.path.join(out, "vocab.json"), os.path.join(out, "merges.txt"))
    assert tok.bos_token_id == 4512 and tok.eos_token_id == 4513 and len(tok) == 4514

    torch.manual_seed(0)
    cfg = CLIPConfig(
        text_config=dict(vocab_size=4514, hidden_size=16, intermediate_size=32,
                         num_hidden_layers=2, num_attention_heads=2,
                         max_position_embeddings=77, bos_token_id=4512, eos_token_id=4513,
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
    model.save_pretrained(os.path.join(out, "model"), safe_serialization=True)

    pixels = torch.randn(2, 3, 32, 32)
    ids = [tok(t, truncation=True, max_length=77)["input_ids"] for t in TEXTS]
    assert len(ids[3]) == 77 and ids[3][-1] == 4513, "text 3 must be truncated"
    assert len(tok(TEXTS[3])["input_ids"]) > 77
    assert ids[2] == [4512, 4513]
    with torch.no_grad():
        img = model.get_image_features(pixel_values=pixels)                      # (2,E)
        txt = torch.cat([model.get_text_features(input_ids=torch.tensor([i]))
                         for i in ids])                                           # (n,E)
        # The same features from one padded batch (pad = <|endoftext|>): padding must not
        # matter, which the C code relies on when it pads per batch.
        batch = tok(TEXTS, truncation=True, max_length=77, padding=True,
                    return_tensors="pt")
        txt_b = model.get_text_features(**batch)
        assert torch.allclose(txt, txt_b, atol=1e-6), (txt - txt_b).abs().max()
    i64, t64 = img.double(), txt.double()
    S = (i64 / i64.norm(dim=-1, keepdim=True)) @ (t64 / t64.norm(dim=-1, keepdim=True)).T
    with open(os.path.join(out, "cases.json"), "w") as f:
        # One text, id list or row of S per line.
        rows = lambda xs: "[\n  " + ",\n  ".join(json.dumps(x, ensure_ascii=False)
                                                  for x in xs) + "\n ]"
        f.write('{\n "texts": %s,\n "ids": %s,\n "S": %s\n}\n'
                % (rows(TEXTS), rows(ids), rows(S.tolist())))
    save_file({"pixel_values": pixels.contiguous(), "image_features": img.contiguous(),
               "text_features": txt.contiguous()},
              os.path.join(out, "tensors.safetensors"))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures/similarity")
