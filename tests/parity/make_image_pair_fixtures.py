#!/usr/bin/env python3
"""Writes tests/fixtures/image_pairs/expected.json: the prompt ids of image rows that
tests/test_image_pairs.c reproduces with aspo/data/pair_tokens.c, by two references:

  * llava-hf (tokenizer that has "<image>" as an added token, tests/fixtures/tokenizer/llava):
    transformers' fast tokenizer on the whole vicuna_v1 prompt, as LlavaProcessor in
    transformers 4.44 tokenizes it (no special tokens added by the tokenizer: TRL passes
    add_special_tokens=False; aspo prepends BOS itself, so BOS is added here by hand).
  * original LLaVA (tokenizer without "<image>", tests/fixtures/tokenizer/vicuna, the
    SentencePiece tokenizer.model): LLaVA's llava/mm_utils.py tokenizer_image_token,
    transcribed below: split the prompt on "<image>", tokenize each chunk with
    tokenizer(chunk).input_ids (BOS included), keep the first chunk's BOS, drop the BOS of
    the others, and put IMAGE_TOKEN_INDEX (-200) between them.

Not covered, a known difference: when "<image>" ends the question, LLaVA's slow
tokenizer encodes the chunk " ASSISTANT:" as ['▁', '▁ASSISTANT', ':'] while the fast
tokenizer (and aspo, which matches LlamaTokenizerFast) gives ['▁ASSISTANT', ':'].

The prompt of a row is "<image>\\n" + question when the question has no "<image>"
(LLaVA's convention), then the vicuna_v1 template.

Generated with: Python 3.11.2, transformers 4.44.2, tokenizers 0.19.1, sentencepiece 0.2.3:
  /tmp/venv_tok/bin/python tests/parity/make_image_pair_fixtures.py tests/fixtures
"""
import json
import os
import sys

from transformers import AutoTokenizer, LlamaTokenizer

SYSTEM = ("A chat between a curious user and an artificial intelligence assistant. "
          "The assistant gives helpful, detailed, and polite answers to the user's questions.")
QUESTIONS = [
    "What is in the picture?",
    "<image>\nDescribe the image in detail.",
    "Count the red squares.\n<image>\nAnswer briefly.",
    "  leading spaces and a tab\t?",
]


def vicuna(question):
    if "<image>" not in question:
        question = "<image>\n" + question
    return SYSTEM + " USER: " + question + " ASSISTANT:"


def tokenizer_image_token(prompt, tok, image_token_index=-200):
    chunks = [tok(c).input_ids for c in prompt.split("<image>")]
    out, offset = [], 0
    if chunks and chunks[0] and chunks[0][0] == tok.bos_token_id:
        offset = 1
        out.append(chunks[0][0])
    sep = [image_token_index] * (offset + 1)
    joined = [e for sub in zip(chunks, [sep] * len(chunks)) for e in sub][:-1]
    for x in joined:
        out.extend(x[offset:])
    return out


def main(fix):
    hf = AutoTokenizer.from_pretrained(os.path.join(fix, "tokenizer/llava"))
    orig = LlamaTokenizer.from_pretrained(os.path.join(fix, "tokenizer/vicuna"))
    cases = []
    for q in QUESTIONS:
        p = vicuna(q)
        hf_ids = [hf.bos_token_id] + hf(p, add_special_tokens=False).input_ids
        cases.append({"question": q, "tokenizer": "llava", "image_token": 1000,
                      "prompt_ids": hf_ids})
        cases.append({"question": q, "tokenizer": "vicuna", "image_token": -200,
                      "prompt_ids": tokenizer_image_token(p, orig)})
    out = os.path.join(fix, "image_pairs/expected.json")
    with open(out, "w") as f:
        json.dump({"cases": cases}, f, indent=1)
    print("wrote", out, len(cases), "cases")


if __name__ == "__main__":
    main(sys.argv[1])
