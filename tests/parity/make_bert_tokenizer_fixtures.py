#!/usr/bin/env python3
"""Parity fixtures for models/bert_tokenizer.c (InstructBLIP's Q-Former instruction tokenizer).

Environment this was run with (record it again when regenerating; versions.txt in the output
says the same):
    Python 3.11.2 (Debian 12), transformers 4.44.2, tokenizers 0.19.1; no torch needed.

    /usr/bin/python3 -m venv --system-site-packages /tmp/venv_bert
    /tmp/venv_bert/bin/pip install transformers==4.44.2 tokenizers==0.19.1
    /tmp/venv_bert/bin/python tests/parity/make_bert_tokenizer_fixtures.py \
        path/to/bert-base-uncased/vocab.txt tests/fixtures/bert_tokenizer

The vocabulary is bert-base-uncased's vocab.txt, byte for byte (231508 bytes, sha256
07eced37...038a3, git blob fb140275...a938, checked below). With no hub access here it was
rebuilt from three public GitHub copies of that file, each of which had renamed a few of
its "[unusedN]" lines for its own purposes: with those lines restored the three agree and
give exactly the hashes of the file the Hub serves.

Writes into the output directory:
    vocab.txt                  bert-base-uncased's vocabulary
    tokenizer_config.json, special_tokens_map.json, added_tokens.json
                               what transformers 4.44 saves for InstructBLIP's qformer
                               tokenizer: BertTokenizer with truncation_side="left",
                               model_max_length=512 and bos_token "[DEC]" added (id 30522),
                               as convert_instructblip_original_to_pytorch.py builds it
    cases.jsonl                one line per string: {"text", "ids" (slow BertTokenizer with
                               [CLS]/[SEP], no truncation), "left16" / "right16" (truncation=True,
                               max_length=16, truncation_side left / right; only where that
                               cuts), "fast_differs" (true where BertTokenizerFast differs)}
    legacy/                    the three JSON files as the Salesforce/instructblip-vicuna-7b
                               checkpoint ships them (no added_tokens_decoder: the legacy path
                               through special_tokens_map.json and added_tokens.json); HF gives
                               the ids of cases.jsonl with them (asserted here)
    options/ + cases_options.jsonl
                               do_lower_case false, strip_accents true, tokenize_chinese_chars
                               false, a never_split entry: the other paths of BasicTokenizer
    nostrip/ + cases_nostrip.jsonl
                               do_lower_case true with strip_accents false: lower-casing, NFC
                               and combining marks reach WordPiece
    added/ + cases_added.jsonl added tokens with lstrip / rstrip / single_word, normalized and
                               not, an additional special token
    versions.txt               the versions above
The C test needs no Python.
"""
import hashlib
import json
import os
import platform
import random
import shutil
import sys
import tempfile

import tokenizers
import transformers
from transformers import AddedToken, BertTokenizer, BertTokenizerFast

VOCAB_SHA256 = "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3"
MAX_LEN = 16

# Salesforce/instructblip-vicuna-7b, qformer_tokenizer/ (commit bb806d8, "Upload processor")
LEGACY = {
    "tokenizer_config.json": {
        "clean_up_tokenization_spaces": True, "cls_token": "[CLS]", "do_lower_case": True,
        "mask_token": "[MASK]", "model_max_length": 512, "pad_token": "[PAD]",
        "sep_token": "[SEP]", "strip_accents": None, "tokenize_chinese_chars": True,
        "tokenizer_class": "BertTokenizer", "truncation_side": "left", "unk_token": "[UNK]"},
    "special_tokens_map.json": {
        "bos_token": "[DEC]", "cls_token": "[CLS]", "mask_token": "[MASK]",
        "pad_token": "[PAD]", "sep_token": "[SEP]", "unk_token": "[UNK]"},
    "added_tokens.json": {"[DEC]": 30522},
}

HAND = [
    # empty and whitespace only
    "", " ", "   ", "\t", "\n", "\r\n", " \t\n\r ", "\u00a0", "\u3000", "\u2028", "\u2029",
    "\u200b", "\x0b\x0c", "\x1c\x1d\x1e\x1f", "\x85",
    # ASCII and mixed case
    "a", "A", "hello", "Hello, World!", "HELLO WORLD", "What is in the image?",
    "Describe the image in detail.", "Write a short description for the image.",
    "Question: what color is the car? Short answer:",
    "Is there a dog in the picture? Answer yes or no.",
    "Can you briefly explain what you see in the image?", "unaffable", "UnAffAble", "playing",
    "tokenization", "Tokenizers ARE fun", "iPhone McDonald's O'Neil", "camelCaseWordsHere",
    "snake_case_words_here", "kebab-case-words-here", "the quick brown fox jumps over the lazy dog",
    # punctuation (ASCII ranges and Unicode P*)
    "!", "!!!", "?!?!...", "a.b,c;d:e", "(a)[b]{c}<d>", "$100 & 50% ^_^ `x` ~y~ |z|",
    "#hashtag @user", "e-mail: a.b@c.de", "http://example.com/a?b=c&d=e#f", "C++ C# F#",
    "don't won't can't", "it's", "rock'n'roll", "\"quoted\" 'single'", "“curly” ‘quotes’",
    "«guillemets» „low“", "em—dash en–dash", "ellipsis… done", "¡Hola! ¿Qué?", "a·b", "§1 ¶2",
    "1,000,000.00", "x^2 + y^2 = z^2", "a/b\\c", "foo...bar", "---", "***", "___",
    "。、「」『』", "，！？：；", "·•‧", "†‡", "‰‱", "′″", "⁂", "⸮",
    # numbers
    "0", "42", "3.14159", "1/2", "2023-10-01", "12:30pm", "+1 (555) 010-9999", "1e-10",
    "100%", "٣٤٥", "۱۲۳", "१२३", "½ ¾ ⅓", "² ³ ¹", "①②③", "Ⅻ ⅳ", "𝟙𝟚𝟛",
    # accents and combining marks
    "café", "naïve résumé", "Ångström", "ÉCOLE ÉLÉMENTAIRE", "e\u0301cole", "cafe\u0301",
    "n\u0303o", "a\u0301\u0301\u0301", "\u0301", "\u0301abc", "x\u0308y\u0323", "Straße",
    "STRASSE ẞ", "ΣΊΣΥΦΟΣ", "ΟΔΥΣΣΕΥΣ", "Οδυσσεύς", "ς σ Σ", "İstanbul", "ıi", "İİ",
    "Ǆ ǅ ǆ", "ﬁne ﬂow ﬀ", "Ⓐⓑ", "ǰ ŉ", "Æsir Œuvre", "Ørsted", "Łódź", "Dvořák", "Škoda",
    "Vũ Nguyễn", "Ελληνικά", "Привет, мир!", "ПРИВЕТ", "Ёлка", "עברית", "العربية",
    "हिन्दी", "বাংলা", "தமிழ்", "ภาษาไทย", "ქართული", "Հայերեն", "ᄀᄂᄃ", "한국어 문장",
    "\u0345", "\u0360\u0361", "a\u20dd", "\u1ab0x",
    # NFC maps these singletons to characters of the vocabulary
    "\u037e", "x\u0387y", "\u1fbe", "\u1fef", "\u2329x\u232a", "\uf902\uf90a\uf963",
    "\ufa19\ufa1b", "\u212b \u2126 \u212a",
    # CJK and kana
    "日本語のテキスト", "中文分词测试", "北京市", "東京タワー", "漢字かなカナ", "㐀㐁", "\U00020000\U0002a700",
    "\uf900\uf901", "\U0002f800", "カタカナ ｶﾀｶﾅ", "ＡＢＣ１２３", "ｈｅｌｌｏ", "ﾟ", "〜",
    "中a文b", "a中b", "1中2", "中。文", "⺩⺼⽥", "乾隆年间", "我爱你！",
    # emoji
    "👍", "👍🏽", "👩‍👩‍👧‍👦", "👋 hi", "❤️", "🇺🇸🇫🇷", "🚀🚀🚀", "☕️", "😀😃😄", "⭐ star", "✅ done",
    # control, format and zero-width characters
    "a\x00b", "a\x07b", "a\x1bb", "a\x7fb", "a\x80b", "a\ufffdb", "\ufffd", "a\u200bb", "a\u200cb",
    "a\u200db", "a\u2060b", "\ufeffbom", "a\u00adb", "a\u202eb\u202c", "a\U000e0001b",
    "a\ue000b", "a\U000f0000b", "tab\there", "new\nline\r\nwin\rmac", "a\u2028b\u2029c",
    "a\u00a0b", "a\u2003b", "a\u202fb", "a\u205fb", "a\u1680b", "\x00\x00",
    # special and added tokens inside text
    "[CLS]", "[SEP]", "[PAD]", "[MASK]", "[UNK]", "[DEC]", "[cls]", "[Cls]", "[ CLS ]",
    "[CLS] hello [SEP]", "hello[MASK]world", "[MASK][MASK]", "a [DEC] b", "[DEC][DEC]x",
    "[dec] [DEC]", "x[UNK]y", "[CLS]\n[SEP]", "[unused0]", "[unused993] [unused994]",
    "[CLS", "CLS]", "[[CLS]]", "[MA SK]", "  [SEP]  ", "ÉCOLE[MASK]ÉCOLE", "ΣΑΣ[SEP]ΣΑΣ",
    # long words and long texts
    "a" * 100, "a" * 101, "x" * 150, "ab" * 50, "ab" * 51, "é" * 100, "é" * 101,
    "e\u0301" * 60, "supercalifragilisticexpialidocious" * 3, "日" * 120,
    "pneumonoultramicroscopicsilicovolcanoconiosis",
    "word " * 40, " ".join(str(i) for i in range(60)),
    "This is a long instruction that goes on and on, with many words, so that truncation at "
    "sixteen tokens cuts it on the left or on the right side.",
]

# instruction words, as VQA and captioning prompts use them
WORDS = """
    what is are the a an this that these in on of to with how many which where who color
    colour shape kind type number person people animal vehicle sign text written describe
    explain summarize identify count list tell briefly detail detailed short long answer
    question yes no image picture photo scene visible shown background foreground left right
    top bottom center holding wearing doing sitting standing why happening likely could would
    should first second after before
""".split()
EXTRA = ["café", "naïve", "Ölçek", "ÉTÉ", "東京", "北京市", "서울", "Москва", "Ελλάδα", "ΣΑΣ",
         "🙂", "🚀🚀", "👨‍💻", "☕️", "42", "3.5", "1,000", "it's", "DON'T", "we'll", "!!",
         "...", "?", "—", "–", "#tag", "@user", "http://x.org/a?b=c", "C++", "O(n²)", "\t",
         "\n\n", "   ", "\u00a0", "ß", "ﬁ", "İ", "ς", "ǅ", "Ⅳ", "½", "x\u0308", "\u0000",
         "\u200d", "\ufeff", "[MASK]", "[DEC]", "[SEP]", "[cls]", "ｆｕｌｌ", "カメラ", "ไทย",
         "مرحبا", "a" * 105, "Xx" * 30, "\u0301", "\x7f", "\u2028", "a\u0300"]


def corpus():
    """HAND, then made-up instructions of 1 to 30 words until there are 620 strings."""
    rng = random.Random(20261207)
    seps = [" "] * 3 + ["", ", ", ". ", "  ", "\t", "-", "?", "\n"]
    casing = [str.upper] * 3 + [str.capitalize] * 3 + [str] * 14

    def word():
        w = rng.choice(EXTRA if rng.random() < 0.3 else WORDS)
        return rng.choice(casing)(w) + rng.choice(seps)

    texts = list(HAND)
    while len(texts) < 620:
        texts.append("".join(word() for _ in range(rng.choice([1, 2, 3, 5, 8, 12, 20, 30]))))
    return texts


# added/: tokens that exercise the added-token paths (they are not InstructBLIP's)
ADDED = [AddedToken("<obj>", lstrip=True, rstrip=True, normalized=False),
         AddedToken("<left>", lstrip=True, normalized=False),
         AddedToken("<right>", rstrip=True, normalized=False),
         AddedToken("xyzzy", single_word=True, normalized=False),
         AddedToken("Mixed", normalized=True),    # lower-cased on adding: "mixed"
         AddedToken("KeepCase", normalized=False),
         AddedToken("hello", normalized=False),   # already in vocab.txt: keeps its id
         AddedToken("<sw>", single_word=True, lstrip=True, rstrip=True, normalized=False),
         AddedToken("<obj>x", normalized=False),  # longest match wins
         AddedToken("zz<", normalized=False)]     # leftmost match wins
# written into the saved config by hand: HF lower-cases a normalized token when adding it
NORMALIZED_UPPER = {"content": "NormUP", "lstrip": False, "normalized": True, "rstrip": False,
                    "single_word": False, "special": False}
ADDED_CASES = [
    "", "<obj>", "a <obj> b", "a<obj>b", "a   <obj>   b", "a <left> b", "a <right> b",
    "<left><right><obj>", "x <right>\n\ty", "xyzzy", "a xyzzy b", "axyzzy b", "a xyzzyb",
    "axyzzyb", "Mixed", "mixed", "MIXED", "a Mixed b", "KeepCase", "keepcase", "KEEPCASE",
    "hello", "Hello", "HELLO there", "hello<obj>hello", "<image>", "a <image> b",
    "<IMAGE>", "<obj><image><obj>", "[DEC]<image>[SEP]", "   <obj>", "<obj>   ",
    "ΣΑΣ <obj> ΣΑΣ", "İ<obj>İ", "<ob j>", "<<obj>>", "xyzzy<obj>xyzzy", "n.e.v.e.r",
    "N.E.V.E.R", "a n.e.v.e.r b", "n.e.v.e.r.", "[CLS] <obj> [SEP]", "<sw>", "a <sw> b",
    "a<sw>b", "a <sw>b", "a<sw> b", "a  <sw>  b", "<sw><sw>", "x <sw>\ny", "<obj><sw><obj>",
    "<obj>\t<sw>", "<sw>\t<obj>", "a\t<sw>\tb", "<right>\t<sw>", "<sw>\t<left>", "\t<sw>",
    "<sw>\t", "n.é.v.e.r", "<obj>xy", "zz<obj>", "zz<obj>x", "NormUP", "normup", "NORMUP",
    "a NormUP b", "NormUPx",
] + ["a %s b <obj> %s" % (w, w.upper()) for w in WORDS[:30]]

OPTIONS_CASES = HAND[:]


def save_config(tok, d):
    """save_pretrained's JSON files only (vocab.txt is the one at the top; added_tokens.json
    is not read where the config has added_tokens_decoder)."""
    tok.save_pretrained(d)
    for name in ("vocab.txt", "added_tokens.json"):
        if os.path.exists(os.path.join(d, name)):
            os.remove(os.path.join(d, name))


def load(vocab, d, **kw):
    """Reload a saved config next to the vocabulary (how the C test assembles it)."""
    tmp = tempfile.mkdtemp()
    for name in os.listdir(d):
        if name.endswith(".json"):
            shutil.copy(os.path.join(d, name), tmp)
    shutil.copy(vocab, tmp)
    slow = BertTokenizer.from_pretrained(tmp, **kw)
    fast = BertTokenizerFast.from_pretrained(tmp, **kw)
    shutil.rmtree(tmp)
    return slow, fast


def write_cases(path, texts, tok, fast=None, truncation=False):
    ndiff = 0
    with open(path, "w", encoding="utf-8") as f:
        for text in texts:
            ids = tok(text)["input_ids"]
            assert tok(text, add_special_tokens=False)["input_ids"] == ids[1:-1]
            rec = {"text": text, "ids": ids}
            if truncation:
                for side in ("left", "right"):
                    tok.truncation_side = side
                    cut = tok(text, truncation=True, max_length=MAX_LEN)["input_ids"]
                    plain = tok(text, add_special_tokens=False, truncation=True,
                                max_length=MAX_LEN)["input_ids"]
                    body = ids[1:-1]
                    want = body[-MAX_LEN:] if side == "left" else body[:MAX_LEN]
                    assert plain == want, (text, side)
                    if cut != ids:
                        rec[side + "16"] = cut
                tok.truncation_side = "left"
            if fast is not None and fast(text)["input_ids"] != ids:
                rec["fast_differs"] = True
                ndiff += 1
            f.write(json.dumps(rec, ensure_ascii=False) + "\n")
    return ndiff


def main():
    vocab_in, out = sys.argv[1], sys.argv[2]
    data = open(vocab_in, "rb").read()
    if hashlib.sha256(data).hexdigest() != VOCAB_SHA256:
        sys.exit(f"{vocab_in} is not bert-base-uncased's vocab.txt (sha256 differs)")
    os.makedirs(out, exist_ok=True)
    vocab = os.path.join(out, "vocab.txt")
    shutil.copy(vocab_in, vocab)

    # InstructBLIP's qformer tokenizer, as the conversion script makes it
    tok = BertTokenizer(vocab, truncation_side="left", model_max_length=512)
    tok.add_special_tokens({"bos_token": "[DEC]"})
    tok.save_pretrained(out)
    slow, fast = load(vocab, out)
    assert len(slow) == 30523 and slow.bos_token_id == 30522 and slow.truncation_side == "left"
    texts = corpus()
    ndiff = write_cases(os.path.join(out, "cases.jsonl"), texts, slow, fast, truncation=True)

    legacy = os.path.join(out, "legacy")
    os.makedirs(legacy, exist_ok=True)
    for name, obj in LEGACY.items():
        with open(os.path.join(legacy, name), "w", encoding="utf-8") as f:
            json.dump(obj, f, indent=2)
    lslow, _ = load(vocab, legacy)
    for text in texts:
        assert lslow(text)["input_ids"] == slow(text)["input_ids"], text

    options = os.path.join(out, "options")
    otok = BertTokenizer(vocab, do_lower_case=False, strip_accents=True,
                         tokenize_chinese_chars=False, never_split=["HELLO.", "Ω!"])
    save_config(otok, options)
    oslow, _ = load(vocab, options)
    write_cases(os.path.join(out, "cases_options.jsonl"), OPTIONS_CASES + ["HELLO. HELLO.x Ω!"],
                oslow)

    nostrip = os.path.join(out, "nostrip")
    save_config(BertTokenizer(vocab, strip_accents=False), nostrip)
    nslow, _ = load(vocab, nostrip)
    write_cases(os.path.join(out, "cases_nostrip.jsonl"), OPTIONS_CASES, nslow)

    added = os.path.join(out, "added")
    atok = BertTokenizer(vocab, never_split=["n.e.v.e.r"])
    atok.add_tokens(ADDED)
    atok.add_special_tokens({"additional_special_tokens": ["<image>"], "bos_token": "[DEC]"})
    save_config(atok, added)
    cfg_path = os.path.join(added, "tokenizer_config.json")
    cfg = json.load(open(cfg_path, encoding="utf-8"))
    cfg["added_tokens_decoder"][str(len(atok))] = NORMALIZED_UPPER
    with open(cfg_path, "w", encoding="utf-8") as f:
        json.dump(cfg, f, indent=2, ensure_ascii=False)
    aslow, _ = load(vocab, added)
    write_cases(os.path.join(out, "cases_added.jsonl"), ADDED_CASES, aslow)

    with open(os.path.join(out, "versions.txt"), "w") as f:
        f.write(f"python {platform.python_version()}\ntransformers {transformers.__version__}\n"
                f"tokenizers {tokenizers.__version__}\nvocab.txt sha256 {VOCAB_SHA256}\n")
    print(len(texts), "strings,", ndiff, "where BertTokenizerFast differs;",
          len(ADDED_CASES), "added-token strings,", len(OPTIONS_CASES) + 1, "option strings")


if __name__ == "__main__":
    main()
