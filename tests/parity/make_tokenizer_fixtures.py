#!/usr/bin/env python3
"""Writes the tokenizer parity fixtures that tests/test_tokenizer.c checks the C tokenizer against.

A small SentencePiece BPE model (vocab 1000, byte_fallback, LLaMA's trainer options) is trained
on a few KB of mixed text (English, accents, CJK, code) made below, then converted by
transformers' LlamaTokenizerFast into the layouts LLaMA/Vicuna/LLaVA files use:

  legacy/      tokenizer.json with legacy=True (normalizer Prepend+Replace, no pre-tokenizer)
  nonlegacy/   tokenizer.json with legacy=False (Metaspace prepend_scheme "first", split false)
  vicuna/      tokenizer.model only, with a Vicuna-v1.5-like tokenizer_config.json (legacy
               false, AddedToken dicts, pad_token null) and special_tokens_map.json (pad "<unk>");
               HF converts it from the .model at load time, as it does for lmsys/vicuna-7b-v1.5
  llava/       legacy tokenizer.json plus "<image>" and "<pad>" added special tokens (as in
               llava-hf/llava-1.5-7b-hf), pad "<pad>", clean_up_tokenization_spaces true
  features/    three tiny tokenizer.json files built with the tokenizers library directly, for
               the variants LLaMA files do not use: Metaspace prepend_scheme always/first and
               split true, the Metaspace decoder (also in its pre-0.14 JSON form), Strip with
               stop, unk without fuse_unk, partial byte fallback, added tokens with
               lstrip/rstrip/single_word/normalized
  corpus.json      >= 500 strings with HF fast tokenizer ids, offsets (converted from
                   characters to UTF-8 bytes) and decode outputs (skip_special_tokens
                   False/True) for each variant, plus decode-only id lists
  features.json    the same for the feature tokenizers

With ASPO_TOKENIZER_MODEL=/path/to/tokenizer.model the same fixtures are made from that model
instead of the trained one (a local check against a real LLaMA tokenizer; write them outside
the repo, e.g. /tmp/real, and run test_tokenizer on that directory).

The JSON files are rewritten compactly (same content, no indentation) to stay small.
HF slow (sentencepiece) ids are compared to the fast ones; differences are counted in
corpus.json's "notes" (the C tokenizer follows fast).

Generated with: Python 3.11.2, transformers 4.44.2, tokenizers 0.19.1, sentencepiece 0.2.3,
protobuf 7.36.2 (Debian torch 1.13 from the system site-packages is not used):
  /usr/bin/python3 -m venv --system-site-packages /tmp/venv_tok
  /tmp/venv_tok/bin/pip install transformers==4.44.2 tokenizers==0.19.1 sentencepiece==0.2.3 \
      protobuf==7.36.2
  /tmp/venv_tok/bin/python tests/parity/make_tokenizer_fixtures.py tests/fixtures/tokenizer
"""
import json
import os
import random
import shutil
import sys
import tempfile

import sentencepiece as spm
import tokenizers
import transformers
from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers, pre_tokenizers
from transformers import LlamaTokenizer, LlamaTokenizerFast

OUT = sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures/tokenizer"

# ---------------------------------------------------------------------------------------------
# Training text: deterministic, a few KB, mixed scripts so CJK pieces exist and rare
# characters (and every emoji) fall back to bytes.

EN = [
    "The quick brown fox jumps over the lazy dog.",
    "A language model predicts the next token from the ones before it.",
    "Preference optimization compares a chosen answer with a rejected one.",
    "We train small adapters instead of the whole network, which saves memory.",
    "The image shows a cat sitting on a red chair next to the window.",
    "Describe the picture in one sentence, then list three details.",
    "Hello, world! How are you today? I am fine, thank you.",
    "It's a beautiful day; don't forget your umbrella, though.",
    "Numbers like 12345 and 3.14159 are split into single digits.",
    "The assistant gives helpful, detailed, and polite answers.",
    "USER: What is in this image? ASSISTANT: A dog playing with a ball.",
    "In the beginning there was nothing, and then there was text.",
    "Tokenizers turn text into numbers that a model can read.",
    "She sells sea shells by the sea shore, and the shells she sells are sea shells.",
    "The training loss went down steadily during the first thousand steps.",
]
FR = [
    "Le café est très chaud, mais la crème brûlée est délicieuse.",
    "Où est la bibliothèque ? Elle est à côté de l'école.",
    "Les élèves étudient l'été et se reposent à Noël.",
    "Ça coûte cher, n'est-ce pas ? Oui, c'est très cher.",
]
DE = [
    "Die Straße ist nass, weil es regnet. Schöne Grüße aus München!",
    "Über den Wolken muss die Freiheit wohl grenzenlos sein.",
    "Der Bär läuft über die Brücke zum Fluss.",
]
ES = [
    "El niño come piñas en la montaña. ¿Cómo estás? ¡Muy bien!",
    "La canción más famosa del año habla de la ilusión.",
]
ZH = [
    "你好，世界！今天天气很好。",
    "我们正在训练一个语言模型。",
    "这只猫坐在红色的椅子上。",
    "语言模型可以回答问题。你好，你好，世界。",
    "中文分词是一个有趣的问题。我们喜欢学习中文。",
]
JA = ["こんにちは、世界。今日はいい天気ですね。", "猫が椅子の上に座っています。"]
KO = ["안녕하세요, 세계. 오늘 날씨가 좋네요."]
CODE = [
    "def add(a, b):\n    return a + b\n",
    "for (int i = 0; i < n; i++) {\n\tsum += x[i];\n}\n",
    "if __name__ == \"__main__\":\n    main()\n",
    "{\"key\": \"value\", \"list\": [1, 2, 3]}",
]


def training_lines():
    rng = random.Random(1234)
    lines = []
    pools = [EN] * 6 + [FR, DE, ES] * 2 + [ZH] * 3 + [JA, KO, CODE]
    for _ in range(260):
        pool = rng.choice(pools)
        line = rng.choice(pool)
        if rng.random() < 0.3:
            line = line + " " + rng.choice(rng.choice(pools))
        lines.append(line.replace("\n", " "))
    # Characters that occur once: below character_coverage, so they fall back to bytes.
    lines.append("罕见字：龘靐齉爩 鱻麤")
    return lines


# ---------------------------------------------------------------------------------------------
# Corpus: >= 500 strings covering what the issue asks for.

def corpus_strings():
    s = []
    s += ["", " ", "  ", "   ", "\t", "\n", "\n\n", "\r\n", " \n ", "\t\t x", "a", "▁", "▁▁a",
          "Hello", " Hello", "Hello ", "  Hello  ", "Hello world", "Hello  world",
          "Hello   world", "Hello\tworld", "Hello\nworld", "Hello\n\nworld", "Hello \n world",
          "line1\r\nline2", "trailing spaces   ", "   leading spaces", "x" * 40, "ab" * 30,
          "1234567890", "3.14159", "-42", "a-b_c.d", "!!!???...", "(parens) [brackets] {braces}",
          "<0x41>", "<0xE4>", "<s", "s>", "</s", "<unk", "< s >", "<<s>>", "<s>>", "<</s>"]
    s += EN + FR + DE + ES + ZH + JA + KO + CODE
    specials = ["<s>", "</s>", "<unk>"]
    for sp in specials:
        s += [sp, sp + sp, " " + sp, sp + " ", sp + "Hello", sp + " Hello", "Hello" + sp,
              "Hello " + sp, "Hello" + sp + "world", "Hello " + sp + " world",
              sp + "\nHello", sp + "你好", sp + "😀", "  " + sp + "  x", sp + "▁x", sp + "  x"]
    s += ["<s></s>", "<s><unk></s>", "</s><s>", "<s>USER: hi</s>", "USER: hi </s><s> ASSISTANT:",
          "A chat between a curious user and an artificial intelligence assistant. USER: Hello! ASSISTANT: Hi!</s>",
          "<image>", "<image>\nDescribe the image.", "USER: <image>\nWhat is this? ASSISTANT:",
          "<pad><pad>", "text<pad>", " <image> ", "<image><s></s>"]
    s += ["café", "naïve", "Ångström", "façade", "coöperate", "œuvre", "Äpfel", "Ñandú", "ÉLÈVE",
          "e\u0301", "ﬁ ligature", "résumé résumé", "Zürich", "İstanbul", "Ελληνικά", "Русский текст",
          "עברית", "العربية", "हिन्दी", "ไทย"]
    s += ["你好", "世界", "你好世界", " 你好", "你好 ", "中文", "龘", "齉龘", "今日は", "안녕", "한국어",
          "日本語のテキスト", "漢字とかな", "你好，世界！", "语言模型", "猫", "椅子"]
    s += ["😀", " 😀", "😀😀", "👍🏽", "👨‍👩‍👧", "🇫🇷", "I ❤ you", "☃", "★☆", "emoji 🎉 party 🎊",
          "😀a😀", "a😀b", "\u200b", "\ufeffBOM", "\u00a0nbsp", "tab\tand\u3000ideographic space",
          "\U0001F600\U0001F601\U0001F602"]
    # Random mixtures: fragments and separators drawn with a fixed seed.
    frags = (EN + FR + DE + ES + ZH + JA + KO + CODE +
             ["😀", "👍", "🎉", "<s>", "</s>", "<unk>", "<image>", "<pad>", "café", "你好", "▁",
              "12", "x", "über", "naïve", "龘", "\t", "\n"])
    seps = ["", " ", "  ", "\n", "\t", " \n", "\n\n", "   "]
    rng = random.Random(42)
    while len(s) < 560:
        n = rng.randint(1, 4)
        parts = []
        for _ in range(n):
            f = rng.choice(frags)
            if len(f) > 16:
                a = rng.randint(0, len(f) - 10)
                f = f[a:a + rng.randint(3, 16)]
            parts.append(f)
            parts.append(rng.choice(seps))
        t = "".join(parts)
        if rng.random() < 0.2:
            t = rng.choice(seps) + t
        s.append(t)
    return s


def byte_offsets(text, offsets):
    """HF gives offsets in characters (code points); the C API gives UTF-8 bytes."""
    pos = [0]
    for ch in text:
        pos.append(pos[-1] + len(ch.encode("utf-8")))
    out = []
    for a, b in offsets:
        out += [pos[a], pos[b]]
    return out


def safe_decode(tok, ids, skip):
    try:
        return tok.decode(ids, skip_special_tokens=skip)
    except BaseException:  # tokenizers 0.19 Strip(stop>0) panics on an empty string
        return False


def entry(text, ids, offsets, dec, dec_skip):
    """One result, compact: [ids, offset deltas, decode, decode_skip]. Offsets as
    (start - previous end, end - start) pairs in UTF-8 bytes; decode null when it equals the
    text, decode_skip null when it equals decode, false where HF could not decode."""
    deltas, prev = [], 0
    for k in range(0, len(offsets), 2):
        deltas += [offsets[k] - prev, offsets[k + 1] - offsets[k]]
        prev = offsets[k + 1]
    return [ids, deltas, None if dec == text else dec, None if dec_skip == dec else dec_skip]


def run_hf(tok, strings):
    out = []
    for t in strings:
        e = tok(t, add_special_tokens=False, return_offsets_mapping=True)
        ids = e["input_ids"]
        out.append(entry(t, ids, byte_offsets(t, e["offset_mapping"]),
                         safe_decode(tok, ids, False), safe_decode(tok, ids, True)))
    return out


def minify(path):
    with open(path, encoding="utf-8") as f:
        obj = json.load(f)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, ensure_ascii=False, separators=(",", ":"))


def save_fast(tok, d):
    os.makedirs(d, exist_ok=True)
    tok.save_pretrained(d)
    if os.path.exists(os.path.join(d, "tokenizer.model")):
        os.remove(os.path.join(d, "tokenizer.model"))
    # add_prefix_space in the config would make from_pretrained rebuild from tokenizer.model;
    # real LLaMA configs do not have it.
    cfg = os.path.join(d, "tokenizer_config.json")
    with open(cfg, encoding="utf-8") as f:
        obj = json.load(f)
    obj.pop("add_prefix_space", None)
    with open(cfg, "w", encoding="utf-8") as f:
        json.dump(obj, f)
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        if os.path.exists(os.path.join(d, name)):
            minify(os.path.join(d, name))


def specials(tok):
    def tid(t):
        return -1 if t is None else tok.convert_tokens_to_ids(str(t))
    return {"bos": tid(tok.bos_token), "eos": tid(tok.eos_token), "pad": tid(tok.pad_token),
            "unk": tid(tok.unk_token), "vocab_size": len(tok)}


def main():
    os.makedirs(OUT, exist_ok=True)
    tmp = tempfile.mkdtemp()
    text_path = os.path.join(tmp, "train.txt")
    with open(text_path, "w", encoding="utf-8") as f:
        f.write("\n".join(training_lines()) + "\n")
    # LLaMA's trainer options, scaled down.
    # Relative paths: the model records them, and the fixture should not name a temp dir.
    cwd = os.getcwd()
    os.chdir(tmp)
    spm.SentencePieceTrainer.train(
        input="train.txt", model_prefix="sp", model_type="bpe", vocab_size=1000,
        character_coverage=0.995, byte_fallback=True, split_digits=True,
        allow_whitespace_only_pieces=True, normalization_rule_name="identity",
        remove_extra_whitespaces=False, add_dummy_prefix=True, unk_id=0, bos_id=1, eos_id=2,
        pad_id=-1, max_sentence_length=4096, num_threads=1, minloglevel=2)
    os.chdir(cwd)
    model = os.path.join(tmp, "sp.model")
    if os.environ.get("ASPO_TOKENIZER_MODEL"):  # a local check against a real model
        model = os.environ["ASPO_TOKENIZER_MODEL"]

    strings = corpus_strings()
    assert len(strings) >= 500
    variants = []

    # Built as from_pretrained builds them from a directory holding only tokenizer.model
    # (LlamaTokenizerFast(vocab_file=...) leaves add_prefix_space None and so drops the
    # Prepend normalizer that real LLaMA files have).
    model_dir = os.path.join(tmp, "model_dir")
    os.makedirs(model_dir)
    shutil.copy(model, os.path.join(model_dir, "tokenizer.model"))
    legacy = LlamaTokenizerFast.from_pretrained(model_dir, legacy=True)
    save_fast(legacy, os.path.join(OUT, "legacy"))
    nonlegacy = LlamaTokenizerFast.from_pretrained(model_dir, legacy=False)
    save_fast(nonlegacy, os.path.join(OUT, "nonlegacy"))

    llava = LlamaTokenizerFast.from_pretrained(model_dir, legacy=True)
    llava.add_tokens([AddedToken("<image>", special=True, normalized=False)], special_tokens=True)
    llava.add_special_tokens({"pad_token": "<pad>"})
    llava.clean_up_tokenization_spaces = True
    save_fast(llava, os.path.join(OUT, "llava"))

    vdir = os.path.join(OUT, "vicuna")
    os.makedirs(vdir, exist_ok=True)
    shutil.copy(model, os.path.join(vdir, "tokenizer.model"))

    def added(content):
        return {"__type": "AddedToken", "content": content, "lstrip": False, "normalized": False,
                "rstrip": False, "single_word": False}
    with open(os.path.join(vdir, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump({"add_bos_token": True, "add_eos_token": False, "bos_token": added("<s>"),
                   "clean_up_tokenization_spaces": False, "eos_token": added("</s>"),
                   "legacy": False, "model_max_length": 4096, "pad_token": None,
                   "padding_side": "right", "sp_model_kwargs": {},
                   "tokenizer_class": "LlamaTokenizer", "unk_token": added("<unk>")}, f, indent=2)
    with open(os.path.join(vdir, "special_tokens_map.json"), "w", encoding="utf-8") as f:
        json.dump({"bos_token": added("<s>"), "eos_token": added("</s>"), "pad_token": "<unk>",
                   "unk_token": added("<unk>")}, f, indent=2)
    for name in ("tokenizer_config.json", "special_tokens_map.json"):
        minify(os.path.join(vdir, name))

    # The references come from the files as committed, loaded the way a user loads them.
    loaded = {name: LlamaTokenizerFast.from_pretrained(os.path.join(OUT, name))
              for name in ("legacy", "nonlegacy", "vicuna", "llava")}
    assert loaded["vicuna"].legacy is False
    results = {name: run_hf(tok, strings) for name, tok in loaded.items()}

    # A directory with only tokenizer.model: HF's default is legacy=True.
    only_model = os.path.join(tmp, "only_model")
    os.makedirs(only_model)
    shutil.copy(model, os.path.join(only_model, "tokenizer.model"))
    r = run_hf(LlamaTokenizerFast.from_pretrained(only_model), strings)
    assert r == results["legacy"], "tokenizer.model alone differs from legacy tokenizer.json"
    # The Vicuna directory (converted from .model, legacy=False) encodes as nonlegacy's json.
    assert results["vicuna"] == results["nonlegacy"], "vicuna .model differs from nonlegacy json"

    notes = []
    for legacy_flag, name in ((True, "legacy"), (False, "nonlegacy")):
        slow = LlamaTokenizer(vocab_file=model, legacy=legacy_flag)
        diff = [i for i, t in enumerate(strings)
                if slow.encode(t, add_special_tokens=False) != results[name][i][0]]
        notes.append(f"HF slow LlamaTokenizer(legacy={legacy_flag}) differs from fast on "
                     f"{len(diff)} of {len(strings)} strings (C follows fast); first: "
                     + ", ".join(json.dumps(strings[i], ensure_ascii=False) for i in diff[:6]))
    print("\n".join(notes))

    # Each variant's results; an entry equal to the base variant's is stored as null (and
    # vicuna's are all nonlegacy's, asserted above), to keep the fixture small.
    bases = {"legacy": None, "nonlegacy": "legacy", "vicuna": "nonlegacy", "llava": "legacy"}
    for name, base in bases.items():
        v = {"name": name, "dir": name, "base": base, "special": specials(loaded[name])}
        v["results"] = [None if base and results[base][i] == r else r
                        for i, r in enumerate(results[name])]
        variants.append(v)

    # Decode-only id lists: random pieces, lone and partial UTF-8 byte tokens, specials.
    rng = random.Random(7)
    vocab = loaded["llava"].get_vocab()
    byte_id = {i: vocab[f"<0x{i:02X}>"] for i in range(256)}
    decode_ids = [[], [byte_id[0xE4]], [byte_id[0xE4], byte_id[0xB8]],
                  [byte_id[0xE4], byte_id[0xB8], byte_id[0xAD]],
                  [byte_id[0xE4], byte_id[0xB8], byte_id[0xAD], byte_id[0xE4]],
                  [byte_id[0x41], byte_id[0xFF], byte_id[0x42]], [vocab["▁"]],
                  [vocab["▁"], vocab["▁"]], [1, vocab["▁"], 2], [1, 2, 0], [0, 0],
                  [len(vocab) - 1, len(vocab) - 2], [vocab["▁"], byte_id[0x20]]]
    for _ in range(60):
        decode_ids.append([rng.randrange(len(vocab)) for _ in range(rng.randint(1, 12))])
    dec = {"ids": decode_ids}
    for name in ("legacy", "nonlegacy", "llava"):
        tok = loaded[name]
        n = len(tok)
        dec[name] = [tok.decode([i for i in ids if i < n]) for ids in decode_ids]
        dec[name + "_skip"] = [tok.decode([i for i in ids if i < n], skip_special_tokens=True)
                               for ids in decode_ids]
    # vicuna decodes as nonlegacy (same decoder, no cleanup); asserted here.
    assert all(loaded["vicuna"].decode(ids) == d for ids, d in zip(decode_ids, dec["nonlegacy"]))

    versions = (f"transformers {transformers.__version__}, tokenizers {tokenizers.__version__}, "
                f"sentencepiece {spm.__version__}")
    with open(os.path.join(OUT, "corpus.json"), "w", encoding="utf-8") as f:
        json.dump({"generator": "tests/parity/make_tokenizer_fixtures.py (" + versions + ")",
                   "notes": notes, "strings": strings, "variants": variants,
                   "decode_cases": dec}, f, ensure_ascii=False, separators=(",", ":"))

    make_features(os.path.join(OUT, "features"), OUT, versions)
    shutil.rmtree(tmp)


# ---------------------------------------------------------------------------------------------
# Feature tokenizers: tiny, built with the tokenizers library, for the variants above.

FEATURE_TEXT = [
    "the cat sat on the mat", "a dog and a cat", "hello world", "the quick brown fox",
    "category dogma concat", "there then than that this", "mask the token", "an ant at a hat",
]


def train_tiny(byte_fallback, fuse_unk, pre):
    tok = Tokenizer(models.BPE(unk_token="<unk>", fuse_unk=fuse_unk, byte_fallback=byte_fallback))
    tok.pre_tokenizer = pre
    trainer = tokenizers.trainers.BpeTrainer(vocab_size=90, special_tokens=["<unk>"],
                                             show_progress=False)
    tok.train_from_iterator(FEATURE_TEXT * 3, trainer=trainer)
    return tok


def make_features(d, out, versions):
    os.makedirs(d, exist_ok=True)
    toks = {}
    # feat_a: Metaspace always + split, Metaspace decoder, unk without fuse_unk.
    a = train_tiny(False, False, pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always"))
    a.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    a.add_special_tokens([AddedToken("<mask>", special=True, lstrip=True, normalized=False),
                          AddedToken("[SEP]", special=True, rstrip=True, normalized=False)])
    a.add_tokens([AddedToken("cat", single_word=True, normalized=False),
                  AddedToken("dog", normalized=True), AddedToken("x y", normalized=True)])
    toks["feat_a"] = a.to_str()

    # feat_b: legacy-style normalizer, partial byte fallback (only the bytes of "é" and "!"),
    # fuse_unk, Strip decoder with stop, normalized added tokens.
    b = train_tiny(True, True, pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always"))
    obj = json.loads(b.to_str())
    obj["pre_tokenizer"] = None
    vocab = obj["model"]["vocab"]
    for byte in (0xC3, 0xA9, 0x21):
        vocab[f"<0x{byte:02X}>"] = len(vocab)
    b = Tokenizer.from_str(json.dumps(obj))
    b.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    b.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(),
                                   decoders.Fuse(), decoders.Strip(" ", 1, 1)])
    b.add_tokens([AddedToken("hello world", normalized=True),
                  AddedToken("éé", normalized=True, single_word=True)])
    b.add_special_tokens([AddedToken("<x>", special=True, lstrip=True, rstrip=True,
                                     normalized=False)])
    toks["feat_b"] = b.to_str()

    # feat_c: Metaspace "first" + split; decoder in the old JSON form (add_prefix_space only);
    # merges written as pairs (the tokenizers >= 0.20 form; same model).
    c = train_tiny(False, True, pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first"))
    c.add_special_tokens([AddedToken("<s>", special=True, normalized=False)])
    obj = json.loads(c.to_str())
    obj["decoder"] = {"type": "Metaspace", "replacement": "▁", "add_prefix_space": True}
    toks["feat_c"] = json.dumps(obj)

    strings = FEATURE_TEXT + [
        "", " ", "cat", " cat", "cat ", "cats", "concat", "a cat.", "cat-dog", "dog", "hotdog",
        "dogs and cats", "<mask>", "the <mask> sat", "the   <mask>", "<mask>  x", "x [SEP]  y",
        "[SEP]", "[SEP] ", "a[SEP]b", "x y", "ax yb", "x  y", "hello world", "hello  world",
        "say hello world!", "helloworld", "éé", "éé é", "aéé", "éé!", "café!", "zzz", "qqq zzz",
        "Q", "é", "😀", "a😀b", "<x>", "a <x> b", "a   <x>   b", "<x><x>", "  <s>", "<s>",
        "<s>the cat", "<s> the cat", "the<s>cat", "▁the", "the▁▁cat", "  the  cat  ",
        "the\tcat", "the\ncat", "THE CAT", "tHe", "x<mask>y", "cat<mask>", "dog<mask>dog",
    ]
    results = {}
    for name, js in toks.items():
        path = os.path.join(d, name + ".json")
        with open(path, "w", encoding="utf-8") as f:
            f.write(js)
        minify(path)
        tok = Tokenizer.from_file(path)
        results[name] = [entry(t, e.ids, byte_offsets(t, e.offsets),
                               safe_decode(tok, e.ids, False), safe_decode(tok, e.ids, True))
                         for t in strings for e in [tok.encode(t, add_special_tokens=False)]]
    # feat_c's merges as [a, b] pairs: same tokenizer for tokenizers >= 0.20; 0.19 cannot read
    # that form, so it is written after the references were made from the string form.
    path = os.path.join(d, "feat_c.json")
    with open(path, encoding="utf-8") as f:
        obj = json.load(f)
    obj["model"]["merges"] = [m.split(" ") for m in obj["model"]["merges"]]
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, ensure_ascii=False, separators=(",", ":"))
    with open(os.path.join(out, "features.json"), "w", encoding="utf-8") as f:
        json.dump({"generator": "tests/parity/make_tokenizer_fixtures.py (" + versions + ")",
                   "strings": strings, "tokenizers": results}, f, ensure_ascii=False,
                  separators=(",", ":"))


if __name__ == "__main__":
    main()
