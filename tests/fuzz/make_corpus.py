#!/usr/bin/env python3
"""Writes the seed corpora of tests/fuzz (corpus/<target>/): small valid inputs taken or
derived from tests/fixtures, plus edge cases; files already there (reproducers of what a
fuzzer found) are kept. Standard library only; run from anywhere:

    python3 tests/fuzz/make_corpus.py

Multi-file inputs join their parts with the scissors line of fuzz_common.h."""
import json
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
FIX = os.path.join(HERE, "..", "fixtures")
OUT = os.path.join(HERE, "corpus")
SEP = b"\n--8<--\n"


def fixture(*path):
    with open(os.path.join(FIX, *path), "rb") as f:
        return f.read()


def parts(*items):
    return SEP.join(items)


def js(obj):
    return json.dumps(obj, indent=1).encode()


def put(target, name, data):
    d = os.path.join(OUT, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


# ---- safetensors -----------------------------------------------------------------------

def safetensors(tensors, metadata=None, pad=True):
    """tensors: [(name, dtype, shape, raw bytes)] laid out in order."""
    header, data = {}, b""
    if metadata is not None:
        header["__metadata__"] = metadata
    for name, dtype, shape, raw in tensors:
        header[name] = {"dtype": dtype, "shape": shape,
                        "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    h = json.dumps(header, separators=(",", ":")).encode()
    if pad:
        h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + data


def f32(*v):
    return struct.pack("<%df" % len(v), *v)


def safetensors_seeds():
    t = "safetensors"
    put(t, "fixture.safetensors", fixture("safetensors_fixture.safetensors"))
    put(t, "toy_train_final.safetensors", fixture("toy_train_final.safetensors"))
    put(t, "every_dtype.safetensors", safetensors([
        ("a.f32", "F32", [2, 2], f32(1, -2, 3.5, float("inf"))),
        ("b.bf16", "BF16", [3], struct.pack("<3H", 0x3F80, 0xC000, 0x7FC0)),
        ("c.f16", "F16", [1, 3], struct.pack("<3H", 0x3C00, 0x7C00, 0x0001)),
        ("d.i32", "I32", [2], struct.pack("<2i", -7, 1 << 30)),
        ("e.scalar", "F32", [], f32(42)),
        ("f.empty", "F32", [0, 3], b""),
    ], metadata={"format": "pt", "note": "seed"}))
    put(t, "other_dtypes.safetensors", safetensors([
        ("i64", "I64", [2], struct.pack("<2q", -1, 1 << 40)),
        ("u8", "U8", [3], b"\x01\x02\x03"),
        ("flag", "BOOL", [1], b"\x01"),
        ("x", "F32", [1], f32(0.5)),
    ]))
    # Header length not a multiple of 8: every tensor is misaligned (read through a copy).
    put(t, "misaligned.safetensors", safetensors([
        ("w", "F32", [2], f32(1, 2)), ("h", "F16", [1], struct.pack("<H", 0x3C00))],
        pad=False))
    shard1 = safetensors([("model.a", "F32", [2], f32(1, 2))], metadata={"format": "pt"})
    shard2 = safetensors([("model.b", "BF16", [2], struct.pack("<2H", 0x3F80, 0x4000))])
    index = js({"metadata": {"total_size": 12}, "weight_map": {
        "model.a": "model-00001-of-00002.safetensors",
        "model.b": "model-00002-of-00002.safetensors"}})
    put(t, "sharded", parts(shard1, shard2, index))
    put(t, "short", b"\x08\x00\x00\x00")
    put(t, "header_past_end", struct.pack("<Q", 1 << 20) + b"{}")
    put(t, "header_not_object", struct.pack("<Q", 2) + b"[]")
    overlap = json.dumps({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                          "b": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}).encode()
    put(t, "overlap.safetensors", struct.pack("<Q", len(overlap)) + overlap + f32(1, 2))


# ---- model configs ---------------------------------------------------------------------

def model_config_seeds():
    t = "model_config"
    put(t, "llama_tiny", fixture("llama", "tiny", "config.json"))
    put(t, "llama_tied", fixture("llama", "tied", "config.json"))
    put(t, "cli_config", fixture("cli", "config.json"))
    put(t, "clip_model", fixture("clip", "model", "config.json"))
    put(t, "clip_vision", fixture("clip", "vision_config.json"))
    put(t, "llava_hf", parts(fixture("llava", "tiny_hf", "config.json"),
                             fixture("llava", "tiny_hf", "preprocessor_config.json")))
    orig = json.loads(fixture("llava", "tiny_orig", "config.json"))
    orig["mm_vision_tower"] = "tower"
    put(t, "llava_original", parts(js(orig), b"", fixture("llava", "clip", "config.json")))
    put(t, "llava_hf_no_preprocessor", fixture("llava", "tiny_hf", "config.json"))
    put(t, "llama3_style", js({
        "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
        "num_attention_heads": 8, "num_key_value_heads": 2, "head_dim": 8, "vocab_size": 300,
        "rms_norm_eps": 1e-5, "rope_theta": 500000.0, "bos_token_id": 0,
        "eos_token_id": [1, 2], "pad_token_id": None, "tie_word_embeddings": True,
        "rope_scaling": {"type": "linear", "factor": 2.0}, "torch_dtype": "bfloat16"}))
    put(t, "instructblip_tiny", fixture("instructblip", "tiny", "config.json"))
    put(t, "empty_object", b"{}")
    put(t, "not_object", b"[1, 2]")
    put(t, "llava_partial", js({"model_type": "llava", "image_token_index": 31999,
                                "text_config": {"model_type": "llama"},
                                "vision_config": {"image_size": 336, "patch_size": 14}}))


# ---- datasets --------------------------------------------------------------------------

def dataset_seeds():
    t = "dataset"
    for name in ("text.jsonl", "tokens.jsonl", "bad_lines.jsonl", "empty_response.jsonl",
                 "missing_field.jsonl", "bad_json.jsonl"):
        put(t, name, fixture("cli", name))
    put(t, "rows.jsonl", fixture("data", "rows.jsonl"))
    put(t, "pairs.jsonl", fixture("llava_data", "pairs.jsonl"))
    put(t, "seva.json", fixture("llava_data", "seva.json"))
    for name in ("image_not_string.jsonl", "seva_bad_entry.json", "seva_not_list.json"):
        put(t, name, fixture("llava_data", "bad", name))
    row = {"id": 7, "prompt": "Q?", "chosen": "yes", "rejected": "no",
           "ref_chosen_logps": -1.5, "ref_rejected_logps": -2.0,
           "ref_chosen_token_logps": [-1.0, -0.5], "ref_rejected_token_logps": [-2.0]}
    put(t, "bom_blank_lines.jsonl", b"\xef\xbb\xbf" + json.dumps(row).encode() + b"\n\n  \n")
    put(t, "empty_list.json", b"[]")
    put(t, "blank.jsonl", b"\n \n\t\n")


# ---- tokenizers ------------------------------------------------------------------------

TEXTS = ("Hello world! The quick brown fox.\n"
         "  leading spaces and <s>special</s> tokens <pad> <image>\n"
         "caf\u00e9 \u4e2d\u6587 \U0001F600 tabs\tand\u2581meta\n"
         "\n").encode()


def tokenizer_seeds():
    t = "tokenizer"
    for d in ("llava", "legacy", "nonlegacy"):
        put(t, d, parts(fixture("tokenizer", d, "tokenizer.json"), TEXTS,
                        fixture("tokenizer", d, "tokenizer_config.json"),
                        fixture("tokenizer", d, "special_tokens_map.json")))
    put(t, "vicuna_model", parts(fixture("tokenizer", "vicuna", "tokenizer.model"), TEXTS,
                                 fixture("tokenizer", "vicuna", "tokenizer_config.json"),
                                 fixture("tokenizer", "vicuna", "special_tokens_map.json")))
    put(t, "vicuna_model_no_config", parts(fixture("tokenizer", "vicuna", "tokenizer.model"),
                                           TEXTS))
    for f in ("feat_a", "feat_b", "feat_c"):
        put(t, f, parts(fixture("tokenizer", "features", f + ".json"), TEXTS))
    put(t, "not_a_tokenizer", parts(b"{}", TEXTS))


def tokenizer_config_seeds():
    t = "tokenizer_config"
    texts = b"<s>ab a</s> c\nab<unk>b\n"
    for d in ("llava", "legacy", "nonlegacy", "vicuna"):
        put(t, d, parts(fixture("tokenizer", d, "tokenizer_config.json"),
                        fixture("tokenizer", d, "special_tokens_map.json"), texts))
    put(t, "added_tokens", parts(js({
        "added_tokens_decoder": {
            "11": {"content": "<extra>", "lstrip": True, "rstrip": False, "normalized": False,
                   "single_word": False, "special": True},
            "12": {"content": "ab c", "lstrip": False, "rstrip": True, "normalized": True,
                   "single_word": True, "special": False}},
        "additional_special_tokens": ["<extra>", {"content": "<new>", "special": True}],
        "pad_token": "<pad>", "clean_up_tokenization_spaces": True, "legacy": False}),
        b"", b"a<extra>ab c b <new>\n <pad>ab\n"))
    put(t, "empty_config", parts(b"{}", b"{}", texts))
    put(t, "null_tokens", parts(js({"bos_token": None, "eos_token": None, "unk_token": None}),
                                b"", texts))


def bytes_to_unicode():
    bs = (list(range(ord("!"), ord("~") + 1)) + list(range(ord("\xa1"), ord("\xac") + 1)) +
          list(range(ord("\xae"), ord("\xff") + 1)))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return [chr(c) for c in cs]


def clip_tokenizer_seeds():
    """CLIP's vocabulary cut to its first 300 merges, laid out as CLIPTokenizer's is."""
    t = "clip_tokenizer"
    merges = fixture("clip_tokenizer", "merges.txt").decode().split("\n")[1:301]
    chars = bytes_to_unicode()
    vocab = chars + [c + "</w>" for c in chars]
    vocab += ["".join(m.split()) for m in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    vocab_json = json.dumps({tok: i for i, tok in enumerate(vocab)}).encode()
    merges_txt = ("#version: 0.2\n" + "\n".join(merges) + "\n").encode()
    text = ("a photo of a cat.\n<|startoftext|>Hello, World!! it's 2024\n"
            "caf\u00e9 \u4e2d\u6587\u00a0x\u0000y\n").encode()
    put(t, "cut", parts(vocab_json, merges_txt, text))
    put(t, "cut_pad_map", parts(vocab_json, merges_txt, text,
                                js({"pad_token": {"content": "!"}})))
    put(t, "empty", parts(b"{}", b"#version: 0.2\n", b"x"))


# ---- images and adapters -----------------------------------------------------------------

def image_seeds():
    for name in ("rgb.png", "rgba.png", "grey.png", "grey16.png", "rgb16.png", "palette.png",
                 "wide.png", "huge.png", "zero_width.png", "truncated.png", "corrupt.png",
                 "photo.jpg", "grey.jpg", "cmyk.jpg", "truncated.jpg", "text.jpg", "big.jpg"):
        put("image", name, fixture("image", name))


def adapter_config_seeds():
    t = "adapter_config"
    put(t, "llama_tiny", parts(fixture("llama", "tiny_adapter", "adapter_config.json"),
                               b"q_proj,v_proj"))
    put(t, "llama_tied", fixture("llama", "tied_adapter", "adapter_config.json"))
    put(t, "llava_regex", parts(fixture("llava", "lora_adapter", "adapter_config.json"),
                                b"all-linear"))
    put(t, "llava_projector", fixture("llava", "proj_adapter", "adapter_config.json"))
    put(t, "layers", parts(js({"peft_type": "LORA", "r": 8, "lora_alpha": 16,
                               "lora_dropout": 0.1, "bias": "none", "use_rslora": True,
                               "target_modules": ["q_proj", "lm_head"],
                               "layers_to_transform": [0, 3]}),
                           b" q_proj , mlp.down_proj,"))
    put(t, "all_linear", js({"peft_type": "LORA", "r": 1, "lora_alpha": 1,
                             "target_modules": "all-linear", "layers_to_transform": 12}))


# ---- dictionaries ----------------------------------------------------------------------
# jansson finds a key by its hash, so libFuzzer's comparison tracing rarely learns the keys a
# loader asks for: each target gets the one-word string literals of its loaders' sources
# (keys, type names, token spellings) as a libFuzzer dictionary, dict/<target>.dict.

SOURCES = {
    "safetensors": ["tensor/safetensors.c"],
    "model_config": ["models/llama_config.c", "models/clip_config.c", "models/llava_config.c",
                     "models/blip_vision.c", "models/qformer.c", "models/instructblip.c"],
    "dataset": ["aspo/data/dataset.c", "aspo/data/dataset_seva.c"],
    "tokenizer": ["models/tokenizer.c", "models/tokenizer_json.c", "models/tokenizer_spm.c",
                  "models/tokenizer_bpe.c", "models/tokenizer_decode.c"],
    "tokenizer_config": ["models/tokenizer.c"],
    "clip_tokenizer": ["models/clip_tokenizer.c"],
    "adapter_config": ["models/peft_adapter.c"],
}
EXTRA = {
    "safetensors": ["F32", "BF16", "F16", "I32", "F64", "I64", "U8", "BOOL", "F8_E4M3"],
    "tokenizer_config": ["<s>", "</s>", "<unk>", "<pad>", r"\xe2\x96\x81"],  # U+2581
    "image": ["IHDR", "IDAT", "IEND", "PLTE", "tRNS", "gAMA", "iCCP", "sBIT", r"\x89PNG",
              r"\xff\xd8\xff", r"\xff\xc0", r"\xff\xc2", r"\xff\xc4", r"\xff\xdb",
              r"\xff\xda", r"\xff\xd9", r"\xff\xdd", r"\xff\xee", "Adobe", "JFIF", "Exif"],
}


def dictionaries():
    import re
    word = re.compile(r'"([A-Za-z_<][A-Za-z0-9_.<>|/-]{1,40})"')
    root = os.path.join(HERE, "..", "..")
    os.makedirs(os.path.join(HERE, "dict"), exist_ok=True)
    for target in sorted(set(SOURCES) | set(EXTRA)):
        words = set(EXTRA.get(target, []))
        for src in SOURCES.get(target, []):
            with open(os.path.join(root, src), encoding="utf-8") as f:
                words |= {w for w in word.findall(f.read()) if not w.endswith((".h", ".c"))}
        lines = []
        for w in sorted(words):
            lines.append('"%s"' % w)
            if target != "image" and "\\" not in w:
                lines.append('"\\"%s\\":"' % w)  # as a JSON key
        with open(os.path.join(HERE, "dict", target + ".dict"), "w") as f:
            f.write("# make_corpus.py: one-word literals of the loaders' sources\n")
            f.write("\n".join(lines) + "\n")


def main():
    # Seeds are rewritten in place, not the directory: inputs a fuzzer found and that were
    # added by hand as reproducers (e.g. corpus/safetensors/empty_tensor_name_found) stay.
    dictionaries()
    safetensors_seeds()
    model_config_seeds()
    dataset_seeds()
    tokenizer_seeds()
    tokenizer_config_seeds()
    clip_tokenizer_seeds()
    image_seeds()
    adapter_config_seeds()


if __name__ == "__main__":
    main()
