#!/usr/bin/env python3
"""Writes tests/fixtures/data/: preference rows and the token ids TRL makes of them, for
tests/test_data.c to reproduce with aspo/data/pair_tokens.c.

TRL 0.14.0 is followed. Its DPOTrainer.tokenize_row (the same function from 0.12 to 0.19)
tokenizes prompt, chosen and rejected separately with add_special_tokens=False, appends EOS
to each completion, then keeps prompt[-max_prompt_length:] and
completion[:max_completion_length]. Its concatenated_forward joins prompt and completion and
cuts the joined sequence to max_length, keeping the first (keep_start) or the last
(keep_end) tokens.

  rows.jsonl        text rows (long prompts, long and multi-byte responses, an <image>
                    placeholder, an empty prompt) plus id / ref log-prob / unknown fields
  trl_tokenize.json for each case (tokenizer variant, chat template, limits, truncation
                    mode, BOS) and row: tokenize_row's prompt_input_ids, chosen_input_ids,
                    rejected_input_ids; the chosen and rejected model inputs after the
                    max_length cut with their prompt-token counts; the truncation counts;
                    the byte offsets of the response tokens (HF offset_mapping, characters
                    converted to UTF-8 bytes); rows whose prompt leaves no room under
                    max_length are marked as errors (aspo refuses them, TRL would not), and
                    so are prompts with no tokens at all (TRL's collator fails on them)

How each expectation is made, all by TRL's own code:
  * BOS. For a decoder-only model TRL 0.14 passes add_special_tokens=False, so the prompt
    has a BOS only when its text carries one (as LLaMA chat templates do). aspo's add_bos
    prepends the BOS id; here the text is bos_token + prompt, handed to tokenize_row, and
    the script checks that this equals [bos_id] + tokens(prompt) on the tokenizer used.
  * max_length. DataCollatorForPreference makes a batch of one pair whose chosen and
    rejected are both the side under test (equal lengths, so 0.14's batch slice is the
    per-sequence cut; with unequal lengths 0.14's keep_end also cuts padding columns of
    the shorter row, which 0.18 fixed with flush_right). concatenated_forward runs on a
    stand-in model that records input_ids and returns zero logits, so each loss token
    adds -log(V) and the prompt count is len(input_ids) - logps / -log(V).
  * vicuna_v1. LLaVA's conv_vicuna_v1.get_prompt() for SeparatorStyle.TWO with one user
    message and an empty assistant turn (llava is not on PyPI; the four lines are below).

Generated with: Python 3.11.2, torch 1.13.0a0 (Debian), trl 0.14.0, transformers 4.46.3,
tokenizers 0.20.3, accelerate 0.34.2, datasets 3.2.0, numpy 1.26.4:
  /usr/bin/python3 -m venv --system-site-packages /tmp/venv_data
  /tmp/venv_data/bin/pip install trl==0.14.0 transformers==4.46.3 tokenizers==0.20.3 \
      accelerate==0.34.2 datasets==3.2.0 numpy==1.26.4 huggingface-hub==0.26.5 \
      pandas==2.2.3 pyarrow==18.1.0 fsspec==2024.9.0 sentencepiece
  /tmp/venv_data/bin/python tests/parity/make_data_fixtures.py tests/fixtures
"""
import json
import math
import os
import sys
import types

import tokenizers
import torch
import transformers
import trl
from transformers import AutoTokenizer
from trl import DPOTrainer
from trl.trainer.dpo_trainer import DataCollatorForPreference

FIXTURES = sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures"
OUT = os.path.join(FIXTURES, "data")

# LLaVA llava/conversation.py, conv_vicuna_v1 (SeparatorStyle.TWO, sep " ", sep2 "</s>").
VICUNA_SYSTEM = ("A chat between a curious user and an artificial intelligence assistant. "
                 "The assistant gives helpful, detailed, and polite answers to the user's "
                 "questions.")


def vicuna_v1(prompt):
    seps = [" ", "</s>"]
    ret = VICUNA_SYSTEM + seps[0]
    for i, (role, message) in enumerate([("USER", prompt), ("ASSISTANT", None)]):
        ret += role + ": " + message + seps[i % 2] if message else role + ":"
    return ret


TEMPLATES = {"raw": lambda p: p, "vicuna_v1": vicuna_v1}

LONG_PROMPT = ("Look at the picture carefully. Describe the scene in detail, including the "
               "people, the objects on the table, the weather outside the window and the "
               "colours of the walls. Then explain what might happen next and why.")
LONG_ANSWER = ("The image shows a small kitchen with a wooden table. Two people sit at the "
               "table and drink coffee from white cups. Outside the window it is raining, "
               "and the sky is grey. The walls are painted light yellow. Next, one of them "
               "will probably stand up and close the window, because the rain is getting "
               "stronger.")

ROWS = [
    dict(id="short", prompt="What colour is the sky?", chosen="The sky is blue.",
         rejected="The sky is green."),
    dict(id=2, prompt=LONG_PROMPT, chosen="A kitchen. Two people drink coffee.",
         rejected="A beach with dogs.", ref_chosen_logps=-12.5, ref_rejected_logps=-20.25),
    dict(prompt="Describe the image.", chosen=LONG_ANSWER, rejected="It is a kitchen.",
         source="unknown fields are ignored", score=0.5),
    dict(prompt="<image>\nWhat is on the plate?",
         chosen="Crème brûlée and a café au lait. 美味しい! \U0001F370",
         rejected="Nothing, the plate is empty."),
    dict(prompt="", chosen="  Leading spaces.\nSecond line.", rejected="x"),
    dict(prompt=LONG_PROMPT + " " + LONG_PROMPT, chosen=LONG_ANSWER,
         rejected=LONG_ANSWER[:120]),
]

# name, tokenizer variant, template, max_length, max_prompt_length, max_completion_length,
# truncation_mode, add_bos. None = no limit (aspo: 0).
CASES = [
    ("TRL defaults, vicuna_v1, llava tokenizer", "llava", "vicuna_v1", 1024, 512, None,
     "keep_end", True),
    ("raw, short limits, keep_end", "legacy", "raw", 48, 16, None, "keep_end", True),
    ("raw, short limits, completion limit, keep_start", "legacy", "raw", 48, 16, 24,
     "keep_start", True),
    ("vicuna_v1, prompt limit only, keep_start, no BOS", "llava", "vicuna_v1", 160, 90, None,
     "keep_start", False),
    ("raw, no prompt limit: long prompts refused, long answers keep their end", "legacy",
     "raw", 40, None, None, "keep_end", True),
    ("Metaspace (legacy=False) tokenizer, no BOS, keep_end", "nonlegacy", "raw", 64, 24, 40,
     "keep_end", False),
]


class Recorder(torch.nn.Module):
    """Stand-in model: zero logits over V tokens; remembers the input_ids it was given."""

    def __init__(self, vocab):
        super().__init__()
        self.vocab = vocab
        self.seen = None

    def forward(self, input_ids, attention_mask=None, **kwargs):
        self.seen = input_ids.clone()
        b, t = input_ids.shape
        return types.SimpleNamespace(logits=torch.zeros(b, t, self.vocab, dtype=torch.float64))


def fake_trainer(max_length, mode, pad_id):
    """A DPOTrainer without __init__: only the attributes concatenated_forward reads."""
    t = DPOTrainer.__new__(DPOTrainer)
    t.__dict__.update(
        is_encoder_decoder=False, aux_loss_enabled=False, padding_value=pad_id,
        max_length=max_length, truncation_mode=mode, use_num_logits_to_keep=False,
        padding_free=False, use_weighting=False, loss_type="sigmoid",
        label_pad_token_id=-100,
        args=types.SimpleNamespace(rpo_alpha=None, max_length=max_length),
        accelerator=types.SimpleNamespace(device=torch.device("cpu")))
    return t


def model_input(prompt_ids, completion_ids, max_length, mode, pad_id, vocab):
    """TRL 0.14's concatenated_forward on the pair (prompt, completion, completion)."""
    collate = DataCollatorForPreference(pad_token_id=pad_id)
    batch = collate([dict(prompt_input_ids=prompt_ids, chosen_input_ids=completion_ids,
                          rejected_input_ids=completion_ids)])
    model = Recorder(vocab)
    with torch.no_grad():
        out = fake_trainer(max_length, mode, pad_id).concatenated_forward(model, batch)
    seq = model.seen[0].tolist()
    assert model.seen[1].tolist() == seq
    n_loss = float(out["chosen_logps"][0]) / -math.log(vocab)
    assert abs(n_loss - round(n_loss)) < 1e-9
    return seq, len(seq) - int(round(n_loss))


def byte_offsets(text, char_offsets):
    enc = [len(text[:i].encode("utf-8")) for i in range(len(text) + 1)]
    return [[enc[a], enc[b]] for a, b in char_offsets]


def run_case(name, variant, template, max_length, mpl, mcl, mode, add_bos):
    tok = AutoTokenizer.from_pretrained(os.path.join(FIXTURES, "tokenizer", variant))
    assert tok.is_fast
    vocab = len(tok)
    pad_id = tok.pad_token_id if tok.pad_token_id is not None else 0
    rows, counts = [], dict(pairs=0, prompts_cut=0, responses_cut=0, sequences_cut=0,
                            tokens_dropped=0)
    for line, row in enumerate(ROWS, 1):
        text = TEMPLATES[template](row["prompt"])
        features = dict(prompt=(tok.bos_token if add_bos else "") + text, chosen=row["chosen"],
                        rejected=row["rejected"])
        full = DPOTrainer.tokenize_row(features, tok, None, None, add_special_tokens=False)
        got = DPOTrainer.tokenize_row(features, tok, mpl, mcl, add_special_tokens=False)
        # BOS in the text is the BOS id in front of the prompt's own tokens.
        plain = tok(text, add_special_tokens=False)["input_ids"]
        assert full["prompt_input_ids"] == ([tok.bos_token_id] if add_bos else []) + plain, name
        p, n_full_p = got["prompt_input_ids"], len(full["prompt_input_ids"])
        if not p:  # TRL's collator makes a float tensor of [] and gather() fails
            rows.append(dict(line=line, error="the prompt has no tokens"))
            continue
        if max_length is not None and len(p) >= max_length:
            rows.append(dict(line=line, error="prompt leaves no room under max_length"))
            continue
        entry = dict(line=line, prompt_input_ids=p)
        drop = n_full_p - len(p)
        cut = dict(prompts_cut=int(drop > 0), responses_cut=0, sequences_cut=0)
        for side in ("chosen", "rejected"):
            c, n_full_c = got[f"{side}_input_ids"], len(full[f"{side}_input_ids"])
            cut["responses_cut"] += int(len(c) < n_full_c)
            drop += n_full_c - len(c)
            seq, n_prompt = model_input(p, c, max_length, mode, pad_id, vocab)
            over = len(p) + len(c) - len(seq)
            cut["sequences_cut"] += int(over > 0)
            drop += over
            enc = tok(row[side], add_special_tokens=False, return_offsets_mapping=True)
            assert enc["input_ids"] == full[f"{side}_input_ids"][:-1]
            entry[f"{side}_input_ids"] = c
            entry[f"{side}_sequence"] = seq
            entry[f"{side}_n_prompt"] = n_prompt
            entry[f"{side}_offsets"] = byte_offsets(row[side], enc["offset_mapping"])
        rows.append(entry)
        counts["pairs"] += 1
        counts["tokens_dropped"] += drop
        for k, v in cut.items():
            counts[k] += v
    return dict(name=name, tokenizer=variant, template=template, max_length=max_length or 0,
                max_prompt_length=mpl or 0, max_completion_length=mcl or 0,
                truncation_mode=mode, add_bos=add_bos, bos_id=tok.bos_token_id,
                eos_id=tok.eos_token_id, rows=rows, counts=counts)


def main():
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, "rows.jsonl"), "w", encoding="utf-8") as f:
        for row in ROWS:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    doc = dict(about="TRL 0.14.0 DPOTrainer.tokenize_row + concatenated_forward max_length cut; "
                     "made by tests/parity/make_data_fixtures.py",
               versions=dict(trl=trl.__version__, transformers=transformers.__version__,
                             tokenizers=tokenizers.__version__, torch=torch.__version__),
               rows="rows.jsonl", cases=[run_case(*c) for c in CASES])
    with open(os.path.join(OUT, "trl_tokenize.json"), "w") as f:
        json.dump(doc, f, separators=(",", ":"))
        f.write("\n")


if __name__ == "__main__":
    main()
