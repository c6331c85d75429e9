#!/usr/bin/env python3
"""Parity fixtures for models/clip_tokenizer.c (CLIP's BPE text tokenizer).

Environment this was run with (record it again when regenerating):
    Python 3.11 (Debian 12), transformers 4.44.2, tokenizers 0.19.1, regex 2026.11.19,
    ftfy NOT installed (so CLIPTokenizer uses its BasicTokenizer path, as LLaVA setups
    without ftfy do), vocabulary from open-clip-torch 2.24.0's
    open_clip/bpe_simple_vocab_16e6.txt.gz (the real OpenAI CLIP merges).

    python3 -m venv --system-site-packages /tmp/venv_cliptok
    /tmp/venv_cliptok/bin/pip install transformers==4.44.2 tokenizers==0.19.1
    pip download --no-deps open-clip-torch==2.24.0 ; unzip it
    /tmp/venv_cliptok/bin/python tests/parity/make_clip_tokenizer_fixtures.py \
        open_clip/bpe_simple_vocab_16e6.txt.gz tests/fixtures/clip_tokenizer

Writes into the output directory:
    vocab.json, merges.txt  the first N_MERGES real CLIP merges and the vocabulary that
                            CLIP's simple_tokenizer derives from them (256 byte symbols,
                            the same with "</w>", one entry per merge, the two specials)
    cases.jsonl             one line per string: {"text", "ids" (slow CLIPTokenizer, no
                            truncation, with <|startoftext|>/<|endoftext|>), "ids77"
                            (truncation=True, max_length=77), "fast_differs" true where
                            CLIPTokenizerFast gives other ids than the slow tokenizer)}
The C test needs no Python.
"""
import gzip
import json
import os
import random
import sys

import transformers
from transformers import CLIPTokenizer, CLIPTokenizerFast

N_MERGES = 4000


def bytes_to_unicode():
    # CLIP/GPT-2's reversible byte -> printable character table.
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs]))


def write_vocab(merges_gz, out):
    lines = gzip.open(merges_gz, "rt", encoding="utf-8").read().split("\n")
    merges = [tuple(m.split()) for m in lines[1:1 + N_MERGES]]
    vocab = list(bytes_to_unicode().values())
    vocab += [v + "</w>" for v in vocab]
    vocab += ["".join(m) for m in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    with open(os.path.join(out, "vocab.json"), "w", encoding="utf-8") as f:
        json.dump({v: i for i, v in enumerate(vocab)}, f, ensure_ascii=False)
    with open(os.path.join(out, "merges.txt"), "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n")
        for m in merges:
            f.write(" ".join(m) + "\n")


HAND = [
    "", " ", "   \t\n  ", "a", "A", "Hello, world!", "HELLO WORLD", "a photo of a cat",
    "A photo of a dog.", "two dogs playing in the snow", "it's", "It'S", "I'LL",
    "don't won't can't", "we're they've I'm you'd", "'s'll'd'm", "''s", "x'sy", "'",
    "rock'n'roll", "1234567890", "3.14159", "12,345.67", "$100 & 50%", "2023-10-01T12:00",
    "!!!", "?!?!...", "---===+++", "(a)[b]{c}", "<html><body>", "e-mail: a.b@c.de",
    "café", "naïve résumé", "Ångström", "ÉCOLE", "e\u0301cole", "n\u0303o", "Straße STRASSE ẞ",
    "ΣΊΣΥΦΟΣ", "Οδυσσεύς", "İstanbul", "ıi", "Привет, мир!", "日本語のテキスト", "中文分词测试",
    "한국어 문장", "ภาษาไทย", "العربية", "עברית", "हिन्दी", "👍", "👩‍👩‍👧‍👦", "👋🏽 hi",
    "❤️ love", "🇺🇸🇫🇷", "ＡＢＣ１２３", "ﬁne ﬂow", "ſ 'ſ", "K Kelvin", "Ⅻ ½ ² ③",
    "a\u00a0b", "a\u3000b", "a\u2028b\u2029c", "a\u200bb", "a\u200db", "a\x00b", "a\x07b",
    "a\ufffdb", "a\u0085b", "a\x1cb", "tab\there", "new\nline\r\nwin", "\u202fnnbsp",
    "<|startoftext|>", "<|endoftext|>", "a<|endoftext|>b", "<|startoftext|>x<|endoftext|>",
    "<|ENDOFTEXT|>", "<|endo\x00ftext|>", "<|endoftext", "|>", "Mr. O'Neil's dog",
    "COVID-19", "x²+y²=z²", "μ-opioid", "Ǆ ǅ ǆ", "ﬀ", "İİ", "AΣ", "ΑΣ.", "Σ",
    "\U00020000\U0002a700", "\uf900\uf901", "㐀㐁", "カタカナ ｶﾀｶﾅ", "ｈｅｌｌｏ",
    "a\u0301\u0301", "\u0301", "\u0345", "ǰ", "ŉ", "Ⓐⓑ", "™©®", "…", "“quoted” ‘single’",
    "tab\t\t\tsep", "  leading and trailing  ", "x" * 120, "ab" * 60,
    " ".join(["word"] * 90), " ".join(str(i) for i in range(100)),
]

WORDS = ("a an the photo picture image of cat dog man woman child car tree house sky blue "
         "red green running sitting on in at with near beautiful small large old new city "
         "mountain river beach sunset night street people group playing holding wearing "
         "shirt hat glasses table food pizza coffee cup computer phone book reading writing "
         "painting drawing sketch illustration render 4k hdr photography portrait landscape "
         "zebra giraffe elephant airplane train bicycle motorcycle umbrella kite skateboard").split()
EXTRA = ["café", "naïve", "Ölçek", "ÉTÉ", "東京", "北京市", "서울", "Москва", "Ελλάδα", "🙂",
         "🚀🚀", "👨‍💻", "☕️", "42", "3.5", "1,000", "it's", "DON'T", "we'll", "'re", "!!",
         "...", "?", "—", "–", "#hashtag", "@user", "http://x.org/a?b=c", "C++", "O(n²)",
         "\t", "\n\n", "   ", "\u00a0", "ß", "ﬁ", "İ", "Σ", "ς", "ǅ", "Ⅳ", "½", "x\u0308",
         "\u0000", "\u200d", "\ufeff", "<|endoftext|>", "ｆｕｌｌ", "カメラ", "ไทย", "مرحبا"]


def corpus():
    rng = random.Random(1234)
    out = list(HAND)
    while len(out) < 560:
        n = rng.choice([1, 2, 3, 5, 8, 12, 20, 30, 45])
        parts = []
        for _ in range(n):
            w = rng.choice(EXTRA) if rng.random() < 0.25 else rng.choice(WORDS)
            r = rng.random()
            if r < 0.15:
                w = w.upper()
            elif r < 0.25:
                w = w.capitalize()
            parts.append(w)
            parts.append(rng.choice([" ", " ", " ", "", ", ", ". ", "  ", "\t", "-", "'"]))
        out.append("".join(parts))
    return out


def main():
    try:
        import ftfy  # noqa: F401
        sys.exit("ftfy is installed: uninstall it, the fixtures are for the no-ftfy path")
    except ImportError:
        pass
    merges_gz, out = sys.argv[1], sys.argv[2]
    os.makedirs(out, exist_ok=True)
    write_vocab(merges_gz, out)
    slow = CLIPTokenizer(os.path.join(out, "vocab.json"), os.path.join(out, "merges.txt"))
    # No tokenizer.json: the fast tokenizer is converted from these files (CLIPConverter).
    fast = CLIPTokenizerFast(os.path.join(out, "vocab.json"), os.path.join(out, "merges.txt"))
    print("transformers", transformers.__version__, "pad", slow.pad_token, slow.pad_token_id,
          "eos", slow.eos_token_id, "bos", slow.bos_token_id, "unk", slow.unk_token_id)
    ndiff = 0
    with open(os.path.join(out, "cases.jsonl"), "w", encoding="utf-8") as f:
        for text in corpus():
            ids = slow(text)["input_ids"]
            ids77 = slow(text, truncation=True, max_length=77)["input_ids"]
            pad = slow(text, truncation=True, max_length=77, padding="max_length")["input_ids"]
            assert pad[:len(ids77)] == ids77 and set(pad[len(ids77):]) <= {slow.pad_token_id}
            rec = {"text": text, "ids": ids}
            if ids77 != ids:
                rec["ids77"] = ids77
            fids = fast(text)["input_ids"]
            if fids != ids:
                rec["fast_differs"] = True
                ndiff += 1
            f.write(json.dumps(rec, ensure_ascii=False) + "\n")
    print(len(corpus()), "strings,", ndiff, "where slow and fast differ")


if __name__ == "__main__":
    main()
