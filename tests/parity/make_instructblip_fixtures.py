#!/usr/bin/env python3
"""Parity fixtures for InstructBLIP (models/blip_vision.c, and later the Q-Former and the
whole model): a tiny random InstructBlipForConditionalGeneration written with
save_pretrained, and its intermediate outputs on fixed inputs.

Environment this was run with (record it again when regenerating; tests/parity/
requirements.txt pins the packages):
    Python 3.11 (Debian 12), torch 1.13.0a0 (Debian's python3-torch), transformers 4.44.2,
    peft 0.12.0 (with accelerate 0.33.0, both --no-deps)

    /usr/bin/python3 -m venv --system-site-packages /tmp/venv_hf
    /tmp/venv_hf/bin/pip install transformers==4.44.2 tokenizers==0.19.1
    /tmp/venv_hf/bin/pip install --no-deps peft==0.12.0 accelerate==0.33.0
    /tmp/venv_hf/bin/python tests/parity/make_instructblip_fixtures.py tests/fixtures/instructblip

Writes into the output directory:
    tiny/                 the model (config.json, model.safetensors), f32, as `aspo run` reads
                          it: the LLaMA tokenizer of tests/fixtures/tokenizer/legacy (1000 ids;
                          the LLM's vocabulary is 1024), preprocessor_config.json
                          (BlipImageProcessor at 28 px) and qformer_tokenizer/ (a BERT
                          WordPiece vocabulary of the words of tests/fixtures/llava_data, the
                          letters and digits; save_pretrained of BertTokenizer)
    tiny_outputs.safetensors
        pixel_values      (2,3,28,28) the images' preprocessed pixels (random, fixed seed)
        vision_hidden     (2,5,32) vision_model(pixel_values).last_hidden_state: after
                          post_layernorm, class token first
        qformer_input_ids (2,6) i32 and qformer_attention_mask (2,6) i32 (the second row
                          padded by 2)
        qformer_hidden    (2,4+6,32) the Q-Former's last_hidden_state (queries first)
        language_inputs   (2,4,48) language_projection of the query outputs
        input_ids         (2,9) i32 LLM ids (BOS first) and attention_mask (the second row
                          padded by 2)
        logits            (2,4+9,V) the LLM's logits: transformers 4.44.2 puts the 4 query
                          outputs before the text (the layout of checkpoints without an
                          image token; later versions fill image-token positions instead)
        answer_mask       (2,9) i32: the text positions whose tokens are scored
        lora_logprobs     (2) with lora_adapter/: sum over answer positions t of
                          log p(input_ids[t] | the queries and the text before t)
        lora_grad.<PEFT key>  d sum(lora_logprobs) / d every lora_A and lora_B
    lora_adapter/         PEFT LoRA (r 4, alpha 8, random non-zero A and B) on the language
                          model's q_proj, k_proj, v_proj: the paper's targets
    pipeline_logps.json   for each row of tests/fixtures/llava_data/pairs.jsonl, with
                          lora_adapter/: the summed log-probs of the chosen and the rejected
                          answer as transformers + PEFT compute them from the files (the
                          image through BlipImageProcessor, the prompt without LLaVA's
                          "<image>" marker through both tokenizers, [BOS] prompt, answer,
                          [EOS] as TRL tokenizes a pair); tests/cli/instructblip.sh compares
                          `aspo score` with them
    versions.json         the versions above, as the script saw them
The C tests need no Python.

Check mode, for an adapter `aspo run` wrote and the scores `aspo score --adapter` gave with
it on that data:
    python make_instructblip_fixtures.py --check-adapter tests/fixtures/instructblip ADAPTER SCORES
loads ADAPTER with PeftModel.from_pretrained onto tiny/, prints the modules it adapted and
compares its log-probs with SCORES' ref_chosen_logps / ref_rejected_logps; exit 1 when a
module outside the LLM's decoder layers is adapted, none is, or they differ by more than
1e-4 of their size. And for `aspo merge --model tiny --adapter lora_adapter --out MERGED`:
    python make_instructblip_fixtures.py --check-merged tests/fixtures/instructblip MERGED
loads MERGED alone (weights, both tokenizers, image processor) in transformers and compares
its log-probs with pipeline_logps.json; exit 1 above 1e-5.
"""
import json
import os
import re
import shutil
import string
import sys

import peft
import torch
import transformers
from safetensors.torch import save_file
from transformers import (BertTokenizer, BlipImageProcessor, InstructBlipConfig, InstructBlipForConditionalGeneration,
                          InstructBlipQFormerConfig, InstructBlipVisionConfig, LlamaConfig)


def tiny_config(qformer_vocab):
    # Small enough for a fast C test, with every structural choice of the released models:
    # qkv_bias (q and v biases, none on k), cross-attention on every other Q-Former layer
    # (cross_attention_frequency 2, as released), GELU (erf) in both, eps 1e-6 / 1e-12.
    vision = InstructBlipVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                      num_attention_heads=4, image_size=28, patch_size=14,
                                      hidden_act="gelu", layer_norm_eps=1e-6, qkv_bias=True)
    qformer = InstructBlipQFormerConfig(vocab_size=qformer_vocab, hidden_size=32,
                                        num_hidden_layers=3, num_attention_heads=4,
                                        intermediate_size=64, max_position_embeddings=24,
                                        cross_attention_frequency=2,
                                        encoder_hidden_size=32, layer_norm_eps=1e-12,
                                        pad_token_id=0)
    text = LlamaConfig(vocab_size=1024, hidden_size=48, intermediate_size=96, num_hidden_layers=2,
                       num_attention_heads=4, num_key_value_heads=4,
                       max_position_embeddings=64, rms_norm_eps=1e-6, bos_token_id=1,
                       eos_token_id=2, pad_token_id=0, tie_word_embeddings=False)
    return InstructBlipConfig(vision_config=vision.to_dict(), qformer_config=qformer.to_dict(),
                              text_config=text.to_dict(), num_query_tokens=4)


REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def qformer_vocab():
    """A small uncased WordPiece vocabulary: BERT's special tokens, the words of the committed
    image dataset, and every letter and digit alone and as a ## continuation, so any ASCII
    text tokenizes (unknown words into pieces)."""
    words = set()
    data = os.path.join(REPO, "tests/fixtures/llava_data/pairs.jsonl")
    with open(data) as f:
        for line in f:
            row = json.loads(line)
            for key in ("prompt", "chosen", "rejected"):
                for w in re.findall(r"[a-z]+", row[key].lower()):
                    words.add(w)
    chars = list(string.ascii_lowercase + string.digits)
    punct = list("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")
    return (["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + punct + chars +
            ["##" + c for c in chars] + sorted(words - set(chars)))


def write_tokenizers(tiny_dir):
    for f in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        shutil.copy(os.path.join(REPO, "tests/fixtures/tokenizer/legacy", f), tiny_dir)
    qdir = os.path.join(tiny_dir, "qformer_tokenizer")
    os.makedirs(qdir, exist_ok=True)
    vocab = os.path.join(qdir, "vocab.txt")
    with open(vocab, "w") as f:
        f.write("\n".join(qformer_vocab()) + "\n")
    BertTokenizer(vocab, do_lower_case=True).save_pretrained(qdir)
    BlipImageProcessor(size={"height": 28, "width": 28}).save_pretrained(tiny_dir)


def lora(model, out, pixel_values, q_ids, q_mask, ids, mask, answer, tensors):
    """LoRA on the LLM's q/k/v (PEFT matches the suffixes, and no Q-Former or vision module
    ends in them), the answer tokens' log-probs and their gradients."""
    torch.manual_seed(2)
    cfg = peft.LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, init_lora_weights=False,
                          target_modules=["q_proj", "k_proj", "v_proj"])
    pm = peft.get_peft_model(model, cfg).eval()
    logits = pm(pixel_values=pixel_values, qformer_input_ids=q_ids,
                qformer_attention_mask=q_mask, input_ids=ids, attention_mask=mask).logits
    text = logits[:, 4:].float()  # the text's positions, after the 4 queries
    logp = torch.log_softmax(text[:, :-1], dim=-1)
    tok = torch.gather(logp, 2, ids[:, 1:, None])[..., 0]
    lp = (tok * answer[:, 1:]).sum(dim=1)
    lp.sum().backward()
    tensors["lora_logprobs"] = lp.detach()
    for n, p in pm.named_parameters():
        if "lora_" in n:
            tensors["lora_grad." + n.replace(".default", "")] = p.grad.detach().clone()
    d = os.path.join(out, "lora_adapter")
    shutil.rmtree(d, ignore_errors=True)
    pm.save_pretrained(d)
    path = os.path.join(d, "adapter_config.json")
    with open(path) as f:
        acfg = json.load(f)
    acfg["base_model_name_or_path"] = "tiny"  # no machine paths in the fixture
    with open(path, "w") as f:
        json.dump(acfg, f, indent=2, sort_keys=True)
    with open(os.path.join(d, "README.md"), "w") as f:
        f.write("PEFT LoRA adapter for the tiny random InstructBLIP fixture; see "
                "tests/parity/make_instructblip_fixtures.py.\n")
    print("lora logprobs", lp.tolist(), "targets", sorted(pm.peft_config["default"].target_modules))


def pipeline_logps(model, tiny_dir):
    """Chosen and rejected log-prob sums of every pair of the committed image dataset, from
    the files as a user of transformers would prepare them."""
    from PIL import Image
    tok = transformers.AutoTokenizer.from_pretrained(tiny_dir)
    qtok = BertTokenizer.from_pretrained(os.path.join(tiny_dir, "qformer_tokenizer"))
    images = BlipImageProcessor.from_pretrained(tiny_dir)
    data = os.path.join(REPO, "tests/fixtures/llava_data")
    rows = []
    with open(os.path.join(data, "pairs.jsonl")) as f:
        for line in f:
            row = json.loads(line)
            # LLaVA's marker is not InstructBLIP's: the queries always go first.
            text = re.sub(r"<image>\n?", "", row["prompt"], count=1)
            pil = Image.open(os.path.join(data, "images", row["image"])).convert("RGB")
            # Through a list: Debian's torch 1.13 cannot read the venv's numpy 2 arrays
            # (float32 values go through Python floats exactly).
            arr = images(pil, return_tensors="np")["pixel_values"]
            pixels = torch.tensor(arr.tolist(), dtype=torch.float32)
            q = {k: torch.tensor([v]) for k, v in qtok(text).items()}
            prompt = [tok.bos_token_id] + tok(text, add_special_tokens=False)["input_ids"]
            sums = []
            for key in ("chosen", "rejected"):
                answer = tok(row[key], add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
                ids = torch.tensor([prompt + answer])
                with torch.no_grad():
                    logits = model(pixel_values=pixels, qformer_input_ids=q["input_ids"],
                                   qformer_attention_mask=q["attention_mask"],
                                   input_ids=ids).logits
                Q = logits.shape[1] - ids.shape[1]
                logp = torch.log_softmax(logits[0, Q:-1].double(), dim=-1)
                target = ids[0, 1:]
                lp = logp.gather(1, target[:, None])[:, 0][len(prompt) - 1:]
                sums.append(lp.sum().item())
            rows.append({"chosen": sums[0], "rejected": sums[1]})
    return rows


def load_tiny(fixture_dir):
    return InstructBlipForConditionalGeneration.from_pretrained(
        os.path.join(fixture_dir, "tiny"), torch_dtype=torch.float32).eval()


def check_adapter(fixture_dir, adapter_dir, scores_path):
    pm = peft.PeftModel.from_pretrained(load_tiny(fixture_dir), adapter_dir).eval()
    adapted = sorted({n.split(".lora_A")[0].replace("base_model.model.", "")
                      for n, _ in pm.named_parameters() if ".lora_A." in n})
    print("target_modules:", pm.peft_config["default"].target_modules)
    print("adapted:", adapted)
    ok = bool(adapted) and all(n.startswith("language_model.model.layers.") for n in adapted)
    want = pipeline_logps(pm, os.path.join(fixture_dir, "tiny"))
    with open(scores_path) as f:
        got = [json.loads(line) for line in f if line.strip()]
    worst = 0.0
    for w, g in zip(want, got):
        for key in ("chosen", "rejected"):
            a, b = w[key], g["ref_%s_logps" % key]
            worst = max(worst, abs(a - b) / max(1.0, abs(a)))
    print(f"{len(got)} rows: worst |PEFT - aspo| / |PEFT| = {worst:.3g}")
    return 0 if ok and len(got) == len(want) and worst <= 1e-4 else 1


def check_merged(fixture_dir, merged_dir):
    """A directory `aspo merge` wrote from tiny/ and lora_adapter/ loads in transformers
    (model, tokenizers and image processor from it alone) and gives the PEFT model's
    pipeline log-probs."""
    model = InstructBlipForConditionalGeneration.from_pretrained(
        merged_dir, torch_dtype=torch.float32).eval()
    got = pipeline_logps(model, merged_dir)
    with open(os.path.join(fixture_dir, "pipeline_logps.json")) as f:
        want = json.load(f)
    worst = max(abs(w[k] - g[k]) / max(1.0, abs(w[k])) for w, g in zip(want, got)
                for k in ("chosen", "rejected"))
    print(f"{len(got)} rows: worst |merged - PEFT| / |PEFT| = {worst:.3g}")
    return 0 if len(got) == len(want) and worst <= 1e-5 else 1


def main():
    if sys.argv[1] == "--check-adapter":
        sys.exit(check_adapter(sys.argv[2], sys.argv[3], sys.argv[4]))
    if sys.argv[1] == "--check-merged":
        sys.exit(check_merged(sys.argv[2], sys.argv[3]))
    out = sys.argv[1]
    torch.manual_seed(0)
    cfg = tiny_config(len(qformer_vocab()))
    model = InstructBlipForConditionalGeneration(cfg).eval()
    # Random weights everywhere (the init zeroes query_tokens and some biases, which would
    # hide a missing term), scaled so activations stay O(1).
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name.lower() and name.endswith("weight"):
                p.copy_(1 + 0.1 * torch.randn_like(p))
            else:
                p.copy_(0.2 * torch.randn_like(p))
        # The k third of the fused vision qkv bias is zero in every InstructBLIP checkpoint
        # (the model has q and v biases only).
        for layer in model.vision_model.encoder.layers:
            b = layer.self_attn.qkv.bias
            C = b.shape[0] // 3
            b[C:2 * C] = 0
    model.save_pretrained(os.path.join(out, "tiny"), safe_serialization=True)
    write_tokenizers(os.path.join(out, "tiny"))

    g = torch.Generator().manual_seed(1)
    pixel_values = torch.randn(2, 3, 28, 28, generator=g)
    q_ids = torch.randint(1, 40, (2, 6), generator=g)
    q_mask = torch.ones(2, 6, dtype=torch.long)
    q_mask[1, 4:] = 0
    q_ids[1, 4:] = 0
    ids = torch.randint(3, 1024, (2, 9), generator=g)
    ids[:, 0] = 1
    mask = torch.ones(2, 9, dtype=torch.long)
    mask[1, 7:] = 0
    with torch.no_grad():
        vision = model.vision_model(pixel_values=pixel_values).last_hidden_state
        query_tokens = model.query_tokens.expand(2, -1, -1)
        q_full_mask = torch.cat([torch.ones(2, 4, dtype=torch.long), q_mask], dim=1)
        qformer = model.qformer(input_ids=q_ids, attention_mask=q_full_mask,
                                query_embeds=query_tokens, encoder_hidden_states=vision,
                                encoder_attention_mask=torch.ones(vision.shape[:-1],
                                                                  dtype=torch.long))
        qformer_hidden = qformer.last_hidden_state
        language_inputs = model.language_projection(qformer_hidden[:, :4, :])
        logits = model(pixel_values=pixel_values, qformer_input_ids=q_ids,
                       qformer_attention_mask=q_mask, input_ids=ids,
                       attention_mask=mask).logits
    tensors = {
        "pixel_values": pixel_values, "vision_hidden": vision,
        "qformer_input_ids": q_ids.to(torch.int32),
        "qformer_attention_mask": q_mask.to(torch.int32), "qformer_hidden": qformer_hidden,
        "language_inputs": language_inputs, "input_ids": ids.to(torch.int32),
        "attention_mask": mask.to(torch.int32), "logits": logits,
    }
    answer = torch.zeros(2, 9, dtype=torch.long)
    answer[0, 5:] = 1
    answer[1, 4:7] = 1
    tensors["answer_mask"] = answer.to(torch.int32)
    lora(model, out, pixel_values, q_ids, q_mask, ids, mask, answer, tensors)
    # The whole pipeline from files, with the PEFT adapter just written.
    pm = peft.PeftModel.from_pretrained(load_tiny(out), os.path.join(out, "lora_adapter")).eval()
    with open(os.path.join(out, "pipeline_logps.json"), "w") as f:
        json.dump(pipeline_logps(pm, os.path.join(out, "tiny")), f, indent=1)
        f.write("\n")
    save_file({k: v.contiguous() for k, v in tensors.items()},
              os.path.join(out, "tiny_outputs.safetensors"))
    with open(os.path.join(out, "versions.json"), "w") as f:
        json.dump({"python": sys.version.split()[0], "torch": torch.__version__,
                   "transformers": transformers.__version__, "peft": peft.__version__}, f,
                  indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
