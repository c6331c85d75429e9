#!/usr/bin/env python3
"""Writes the LLaVA-1.5 parity fixtures that tests/test_llava.c reproduces in C.

A tiny random transformers LlavaForConditionalGeneration (f32, eager attention):
  vision: CLIP image 32, patch 8 (16 patches + class token), hidden 32, intermediate 64,
          3 layers (so vision_feature_layer -2 is not the last), 4 heads, quick_gelu
  text:   LLaMA hidden 32, intermediate 48, 2 layers, 4 heads, 2 kv heads, vocab 1024
  image_token_index 1000, pad_token_id 1001 (the tokenizer of tests/fixtures/tokenizer/
  llava has "<image>" = 1000, "<pad>" = 1001), projector_hidden_act gelu, layer -2,
  select strategy "default"
Every LayerNorm / RMSNorm weight is 1 + 0.1 N(0,1) and every bias 0.1 N(0,1), so a missing
norm or bias shows; initializer_range 0.1 keeps attention far from uniform.

Writes into the output directory:
  tiny_hf/      save_pretrained (llava-hf layout: language_model.*, vision_tower.*,
                multi_modal_projector.*), the tokenizer files, preprocessor_config.json
                (CLIPImageProcessor, shortest_edge 32, crop 32, CLIP mean/std)
  clip/         a full CLIPModel (text: vocab 4514, bos 4512, eos 4513, hidden 8, 1 layer,
                2 heads; projection_dim 16) whose vision_model.* is byte-identical to
                tiny_hf's vision_tower.vision_model.*; vocab.json + merges.txt of
                tests/fixtures/clip_tokenizer; preprocessor_config.json as tiny_hf's
  tiny_orig/    the same weights in the original (liuhaotian) layout: config model_type
                "llava_llama" (the LLaMA fields + mm_vision_tower "../clip",
                mm_projector_type "mlp2x_gelu", mm_vision_select_layer -2,
                mm_vision_select_feature "patch", mm_hidden_size 32, image_aspect_ratio
                "pad"); weights model.*, lm_head.weight, model.mm_projector.0/2.*
  lora_adapter/ PEFT 0.12 LoRA (r 4, alpha 8, random non-zero A and B) on the language
                model's seven projections, target_modules a regex (a list of names would
                adapt the vision tower's q_proj/v_proj too)
  proj_adapter/ PEFT LoRA (r 2, alpha 4) on the LLM's q_proj, v_proj and on
                multi_modal_projector.linear_1/linear_2
  outputs.safetensors
    input_ids (2,10) i32        what the HF model is given: one <image> each; row 1 right-
    hf_attention_mask (2,10)    padded with <pad> (1001)
    pixel_values (2,3,32,32)    photo.jpg (45x35) and wide.png (120x9) of
                                tests/fixtures/image through LLaVA's expand2square (mean
                                colour) + CLIPImageProcessor
    ids, attention_mask, answer_mask, feature_row (2,25) i32: the sequences as aspo takes
                                them, each <image> expanded to 16 positions (as 4.44's
                                _merge_input_ids_with_image_features); feature_row = the
                                image_features row (image b, patch j -> 16 b + j) filling
                                a position, -1 for text
    image_features (2,16,32)    multi_modal_projector(hidden_states[-2][:, 1:])
    clip_image_embeds (2,16)    clip/'s get_image_features (visual_projection of pooled)
    logits (2,25,1024)          the base model (compare where attention_mask is 1: HF zeroes
                                padded positions' embeddings and gives them position 1)
    logprobs (2)                sum over answer positions t of log_softmax(logits[t-1])[ids[t]]
    lora_logits (2,8,1024), lora_logprobs (2)   with lora_adapter; the logits of positions
                                17..24 only (after both images), to keep the fixture small
    lora_grad.<PEFT key>        d sum(lora_logprobs) / d every lora_A / lora_B
    proj_logprobs, proj_grad.<PEFT key>   the same with proj_adapter

Generated with: Python 3.11.2, torch 1.13.0a0 (Debian python3-torch), transformers 4.44.2,
peft 0.12.0, safetensors 0.4.4, Pillow (Debian), numpy 1.24.2 (the venv of
make_llama_fixtures.py):
  /tmp/venv_llama/bin/python tests/parity/make_llava_fixtures.py tests/fixtures/llava

Check mode, for the adapter test_llava writes when given an export dir (argv[2]):
  python make_llava_fixtures.py --check-adapter tests/fixtures/llava EXPORT_DIR/saved_adapter
loads the aspo-written adapter with PeftModel.from_pretrained onto tiny_hf, prints which
modules it adapted, and compares its logits with the ones aspo computed with that adapter
(EXPORT_DIR/saved_adapter_logits.safetensors); exit 1 when a module outside the language
model's decoder layers and the projector is adapted, none is, or the logits differ by
1e-4 or more.
"""
import json
import os
import shutil
import sys

import numpy as np
import peft
import safetensors
import torch
import transformers
from PIL import Image
from safetensors.torch import load_file, save_file
from transformers import (CLIPConfig, CLIPImageProcessor, CLIPModel, LlavaConfig,
                          LlavaForConditionalGeneration)

IMAGE_TOKEN, PAD = 1000, 1001
REPO = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
VISION = dict(model_type="clip_vision_model", image_size=32, patch_size=8, hidden_size=32,
              intermediate_size=64, num_hidden_layers=3, num_attention_heads=4,
              hidden_act="quick_gelu", layer_norm_eps=1e-5)
TEXT = dict(model_type="llama", hidden_size=32, intermediate_size=48, num_hidden_layers=2,
            num_attention_heads=4, num_key_value_heads=2, vocab_size=1024,
            max_position_embeddings=64, rms_norm_eps=1e-6, initializer_range=0.1,
            bos_token_id=1, eos_token_id=2, pad_token_id=PAD)
LLM_ALL = (r"language_model\.model\.layers\.[0-9]+\."
           r"(self_attn\.(q_proj|k_proj|v_proj|o_proj)|mlp\.(gate_proj|up_proj|down_proj))")
LLM_QV_PROJ = (r"language_model\.model\.layers\.[0-9]+\.self_attn\.(q_proj|v_proj)"
               r"|multi_modal_projector\.(linear_1|linear_2)")
LORA_LOGITS_FROM = 17  # the first position after both rows' images
CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]


def randomize_norms(model):
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name and name.endswith("weight"):
                p.copy_(1 + 0.1 * torch.randn_like(p))
            elif name.endswith("bias"):
                p.copy_(0.1 * torch.randn_like(p))


def image_processor():
    return CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32},
                              image_mean=CLIP_MEAN, image_std=CLIP_STD, do_convert_rgb=True)


def expand2square(img, background):
    # LLaVA's llava/mm_utils.py expand2square.
    w, h = img.size
    if w == h:
        return img
    if w > h:
        out = Image.new(img.mode, (w, w), background)
        out.paste(img, (0, (w - h) // 2))
        return out
    out = Image.new(img.mode, (h, h), background)
    out.paste(img, ((h - w) // 2, 0))
    return out


def pixels(proc):
    bg = tuple(int(x * 255) for x in proc.image_mean)
    out = []
    for name in ("photo.jpg", "wide.png"):
        img = Image.open(os.path.join(REPO, "tests/fixtures/image", name)).convert("RGB")
        out.append(proc.preprocess(expand2square(img, bg), return_tensors="pt")["pixel_values"][0])
    return torch.stack(out)


def make_sequences(gen, n_patches):
    """HF inputs (one <image> per row, row 1 right-padded) and aspo's expanded form."""
    ids = torch.randint(3, 1000, (2, 10), generator=gen)
    ids[:, 0] = 1
    ids[0, 2] = IMAGE_TOKEN
    ids[1, 1] = IMAGE_TOKEN
    ids[0, 9] = 2
    ids[1, 6] = 2
    ids[1, 7:] = PAD
    mask = (ids != PAD).long()
    answer = torch.zeros(2, 10, dtype=torch.long)
    answer[0, 5:10] = 1
    answer[1, 4:7] = 1
    rows = {k: [] for k in ("ids", "mask", "answer", "feature_row")}
    for b in range(2):
        for t in range(10):
            if ids[b, t] == IMAGE_TOKEN:
                rows["ids"] += [IMAGE_TOKEN] * n_patches
                rows["mask"] += [1] * n_patches
                rows["answer"] += [0] * n_patches
                rows["feature_row"] += [b * n_patches + j for j in range(n_patches)]
            else:
                rows["ids"].append(int(ids[b, t]))
                rows["mask"].append(int(mask[b, t]))
                rows["answer"].append(int(answer[b, t]))
                rows["feature_row"].append(-1)
    T = len(rows["ids"]) // 2
    expanded = {k: torch.tensor(v, dtype=torch.int32).reshape(2, T) for k, v in rows.items()}
    return ids, mask, expanded


def seq_logprobs(logits, ids, answer):
    logp = torch.log_softmax(logits[:, :-1].float(), dim=-1)
    tok = torch.gather(logp, 2, ids[:, 1:, None].long())[..., 0]
    return (tok * answer[:, 1:]).sum(dim=1)


def peft_key(name):
    return name.replace(".default", "")


def save_adapter(pm, out_dir, name):
    d = os.path.join(out_dir, name)
    shutil.rmtree(d, ignore_errors=True)
    pm.save_pretrained(d)
    path = os.path.join(d, "adapter_config.json")
    with open(path) as f:
        cfg = json.load(f)
    cfg["base_model_name_or_path"] = "tiny_hf"  # no machine paths in the fixture
    with open(path, "w") as f:
        json.dump(cfg, f, indent=2, sort_keys=True)
    with open(os.path.join(d, "README.md"), "w") as f:
        f.write("PEFT LoRA adapter for the tiny random LLaVA fixture; see "
                "tests/parity/make_llava_fixtures.py.\n")


def run_with_adapter(model, lcfg, inputs, expanded, out, tag, out_dir, adapter_name):
    pm = peft.get_peft_model(model, lcfg).eval()
    logits = pm(**inputs).logits.float()
    lp = seq_logprobs(logits, expanded["ids"], expanded["answer"])
    lp.sum().backward()
    out[tag + "_logprobs"] = lp.detach()
    for n, p in pm.named_parameters():
        if "lora_" in n:
            out[tag + "_grad." + peft_key(n)] = p.grad.detach().clone()
    save_adapter(pm, out_dir, adapter_name)
    print(f"{tag}: logprobs {lp.tolist()}")
    return pm, logits.detach()


def write_json(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f, indent=2, sort_keys=True)
        f.write("\n")


def main(out_dir):
    print("torch", torch.__version__, "transformers", transformers.__version__,
          "peft", peft.__version__, "safetensors", safetensors.__version__)
    torch.manual_seed(0)
    cfg = LlavaConfig(vision_config=dict(VISION), text_config=dict(TEXT),
                      image_token_index=IMAGE_TOKEN, pad_token_id=PAD,
                      projector_hidden_act="gelu", vision_feature_layer=-2,
                      vision_feature_select_strategy="default")
    cfg._attn_implementation = "eager"
    model = LlavaForConditionalGeneration(cfg).eval()
    randomize_norms(model)
    os.makedirs(out_dir, exist_ok=True)

    # tiny_hf
    hf_dir = os.path.join(out_dir, "tiny_hf")
    shutil.rmtree(hf_dir, ignore_errors=True)
    model.save_pretrained(hf_dir, safe_serialization=True)
    for f in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
              "added_tokens.json"):
        shutil.copy(os.path.join(REPO, "tests/fixtures/tokenizer/llava", f), hf_dir)
    proc = image_processor()
    proc.save_pretrained(hf_dir)

    # clip: a full CLIPModel sharing the vision tower's weights
    torch.manual_seed(1)
    ccfg = CLIPConfig(text_config=dict(vocab_size=4514, hidden_size=8, intermediate_size=16,
                                       num_hidden_layers=1, num_attention_heads=2,
                                       max_position_embeddings=77, bos_token_id=4512,
                                       eos_token_id=4513, pad_token_id=4513),
                      vision_config={k: v for k, v in VISION.items() if k != "model_type"},
                      projection_dim=16, logit_scale_init_value=2.0)
    ccfg._attn_implementation = "eager"
    clip = CLIPModel(ccfg).eval()
    randomize_norms(clip)
    with torch.no_grad():
        clip.vision_model.load_state_dict(model.vision_tower.vision_model.state_dict())
    clip_dir = os.path.join(out_dir, "clip")
    shutil.rmtree(clip_dir, ignore_errors=True)
    clip.save_pretrained(clip_dir, safe_serialization=True)
    for f in ("vocab.json", "merges.txt"):
        shutil.copy(os.path.join(REPO, "tests/fixtures/clip_tokenizer", f), clip_dir)
    proc.save_pretrained(clip_dir)
    a = load_file(os.path.join(hf_dir, "model.safetensors"))
    c = load_file(os.path.join(clip_dir, "model.safetensors"))
    for k, v in c.items():
        if k.startswith("vision_model."):
            assert torch.equal(v, a["vision_tower." + k]), k

    # tiny_orig: the original layout
    orig_dir = os.path.join(out_dir, "tiny_orig")
    shutil.rmtree(orig_dir, ignore_errors=True)
    os.makedirs(orig_dir)
    rename = {"language_model.": "", "multi_modal_projector.linear_1.": "model.mm_projector.0.",
              "multi_modal_projector.linear_2.": "model.mm_projector.2."}
    orig = {}
    for k, v in a.items():
        for old, new in rename.items():
            if k.startswith(old):
                orig[new + k[len(old):]] = v
    save_file(orig, os.path.join(orig_dir, "model.safetensors"), metadata={"format": "pt"})
    ocfg = cfg.text_config.to_dict()
    for k in ("_name_or_path", "transformers_version", "_attn_implementation_autoset"):
        ocfg.pop(k, None)
    ocfg.update(architectures=["LlavaLlamaForCausalLM"], model_type="llava_llama",
                mm_vision_tower="../clip", mm_projector_type="mlp2x_gelu",
                mm_vision_select_layer=-2, mm_vision_select_feature="patch",
                mm_hidden_size=32, image_aspect_ratio="pad", mm_use_im_start_end=False,
                mm_use_im_patch_token=False, tune_mm_mlp_adapter=False, torch_dtype="float32")
    write_json(os.path.join(orig_dir, "config.json"), ocfg)

    # inputs and outputs
    gen = torch.Generator().manual_seed(7)
    n_patches = (32 // 8) ** 2
    ids, mask, expanded = make_sequences(gen, n_patches)
    pv = pixels(proc)
    inputs = dict(input_ids=ids, attention_mask=mask, pixel_values=pv)
    out = {"input_ids": ids.to(torch.int32), "hf_attention_mask": mask.to(torch.int32),
           "pixel_values": pv, "ids": expanded["ids"],
           "attention_mask": expanded["mask"], "answer_mask": expanded["answer"],
           "feature_row": expanded["feature_row"]}
    with torch.no_grad():
        hs = model.vision_tower(pv, output_hidden_states=True).hidden_states[-2][:, 1:]
        out["image_features"] = model.multi_modal_projector(hs)
        out["clip_image_embeds"] = clip.get_image_features(pixel_values=pv)
        logits = model(**inputs).logits.float()
    assert logits.shape[1] == expanded["ids"].shape[1]
    out["logits"] = logits
    out["logprobs"] = seq_logprobs(logits, expanded["ids"], expanded["answer"])
    print("base: logprobs", out["logprobs"].tolist())

    torch.manual_seed(2)
    lcfg = peft.LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules=LLM_ALL,
                           init_lora_weights=False)
    pm, lora_logits = run_with_adapter(model, lcfg, inputs, expanded, out, "lora", out_dir,
                                       "lora_adapter")
    out["lora_logits"] = lora_logits[:, LORA_LOGITS_FROM:].contiguous()  # keeps the fixture small
    model = pm.unload()  # the base model again, without LoRA layers

    torch.manual_seed(3)
    pcfg = peft.LoraConfig(r=2, lora_alpha=4, lora_dropout=0.0, target_modules=LLM_QV_PROJ,
                           init_lora_weights=False)
    run_with_adapter(model, pcfg, inputs, expanded, out, "proj", out_dir, "proj_adapter")
    save_file({k: v.contiguous() for k, v in out.items()},
              os.path.join(out_dir, "outputs.safetensors"))


def check_adapter(fixture_dir, adapter_dir):
    model = LlavaForConditionalGeneration.from_pretrained(
        os.path.join(fixture_dir, "tiny_hf"), torch_dtype=torch.float32,
        attn_implementation="eager").eval()
    pm = peft.PeftModel.from_pretrained(model, adapter_dir).eval()
    adapted = sorted({n.split(".lora_A")[0].replace("base_model.model.", "")
                      for n, _ in pm.named_parameters() if ".lora_A." in n})
    print("target_modules:", pm.peft_config["default"].target_modules)
    print("adapted:", adapted)
    ok = bool(adapted) and all(n.startswith("language_model.model.layers.") or
                               n.startswith("multi_modal_projector.") for n in adapted)
    out = load_file(os.path.join(fixture_dir, "outputs.safetensors"))
    with torch.no_grad():
        logits = pm(input_ids=out["input_ids"].long(),
                    attention_mask=out["hf_attention_mask"].long(),
                    pixel_values=out["pixel_values"]).logits
    m = out["attention_mask"].bool()
    aspo_path = os.path.join(os.path.dirname(os.path.abspath(adapter_dir)),
                             "saved_adapter_logits.safetensors")
    if os.path.exists(aspo_path):
        aspo = load_file(aspo_path)["logits"]
        d = (logits[m] - aspo[m]).abs().max().item()
        print(f"max |PEFT logits - aspo's| at real positions: {d:.3g} (adapter moved them by "
              f"{(logits[m] - out['logits'][m]).abs().max().item():.3g})")
        ok = ok and d < 1e-4
    return 0 if ok else 1


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--check-adapter":
        sys.exit(check_adapter(sys.argv[2], sys.argv[3]))
    if len(sys.argv) != 2:
        sys.exit("usage: make_llava_fixtures.py OUT_DIR | --check-adapter FIXTURE_DIR ADAPTER_DIR")
    main(sys.argv[1])
