#!/usr/bin/env python3
"""Writes tests/fixtures/method/trl_dpo.json: TRL's DPO loss, its gradient and every metric
that DPOTrainer logs, computed by TRL's own methods, for tests/test_method.c to reproduce.

TRL 0.13.0 (December 2024) is followed. Its logits/* metrics are the mean over the response
positions only, which per-pair sums and counts express (0.9.x-0.11.x took the mean over
every position, prompt and padding included), and it no longer drops the last column of a
padded batch as 0.12.x's concatenated_forward did (that cut the longest answer's last token).

The model is a stand-in: a bigram table, logits(position p) = E[input_ids[p]] (float64), so
DPOTrainer.concatenated_forward runs unchanged on real prompt/completion batches (left-padded
prompts, right-padded completions) and yields exact sums. The script computes the per-token
log-probs of each response token and the per-pair logit sums on its own, checks that they
sum to what TRL got, and stores them as the C test's inputs.

  get_batch_loss_metrics  loss (mean over pairs) and the metrics rewards/chosen,
                          rewards/rejected, rewards/accuracies, rewards/margins, logps/chosen,
                          logps/rejected, logits/chosen, logits/rejected
  dpo_loss                d loss.mean() / d chosen_logps and / d rejected_logps per pair
                          (each response token of a pair gets its pair's value)

Generated with: Python 3.11.2, torch 1.13.0a0 (Debian), numpy 1.24.2 (Debian), trl 0.13.0,
transformers 4.46.3, accelerate 1.2.1:
  /usr/bin/python3 -m venv --system-site-packages /tmp/venv_method12
  /tmp/venv_method12/bin/pip install trl==0.13.0 transformers==4.46.3 accelerate==1.2.1 \
      'numpy<2' datasets==3.1.0 pyarrow==17.0.0 pandas==2.2.3 fsspec==2024.9.0 \
      huggingface-hub==0.26.5 rich==13.9.4 tokenizers==0.20.3 safetensors==0.4.5
  /tmp/venv_method12/bin/python tests/parity/make_method_trl.py tests/fixtures/method
"""
import json
import os
import sys
import types

import torch
import trl
from trl import DPOTrainer

V = 11  # vocabulary of the stand-in model
PAD = 0


class Bigram(torch.nn.Module):
    def __init__(self, table):
        super().__init__()
        self.table = table

    def forward(self, input_ids, attention_mask=None, **kwargs):
        return types.SimpleNamespace(logits=self.table[input_ids])


def fake_trainer(policy, ref, beta, label_smoothing):
    """A DPOTrainer without __init__: only the attributes the loss path reads."""
    t = DPOTrainer.__new__(DPOTrainer)
    t.__dict__.update(
        model=policy, ref_model=ref, beta=beta, label_smoothing=label_smoothing,
        loss_type="sigmoid", reference_free=False, f_divergence_type="reverse_kl",
        f_divergence_params=None, padding_value=PAD, label_pad_token_id=-100,
        is_encoder_decoder=False, aux_loss_enabled=False, use_weighting=False,
        use_num_logits_to_keep=False,
        _peft_has_been_casted_to_bf16=False,
        args=types.SimpleNamespace(max_length=None, rpo_alpha=None),
        accelerator=types.SimpleNamespace(device=torch.device("cpu")))
    return t


def pad(rows, left):
    n = max(len(r) for r in rows)
    ids = torch.full((len(rows), n), PAD, dtype=torch.long)
    mask = torch.zeros((len(rows), n), dtype=torch.long)
    for i, r in enumerate(rows):
        sl = slice(n - len(r), n) if left else slice(0, len(r))
        ids[i, sl] = torch.tensor(r)
        mask[i, sl] = 1
    return ids, mask


def token_logps(table, prompt, completion):
    """Per-token log-probs of the completion and the sum of its logits rows."""
    seq = prompt + completion
    lp, lsum = [], 0.0
    for p in range(len(prompt), len(seq)):
        row = table[seq[p - 1]]
        lp.append(float(torch.log_softmax(row, -1)[seq[p]]))
        lsum += float(row.sum())
    return lp, lsum


def make_case(name, seed, beta, label_smoothing, precomputed_ref):
    g = torch.Generator().manual_seed(seed)
    e_pol = torch.randn(V, V, generator=g, dtype=torch.float64) * 1.5
    e_ref = e_pol + 0.3 * torch.randn(V, V, generator=g, dtype=torch.float64)
    policy, ref = Bigram(e_pol), Bigram(e_ref)
    # Token ids 1..V-1 (0 is padding); lengths differ so padding is exercised.
    prompts = [[3, 5, 2], [7, 1], [4, 4, 9, 6]]
    chosen = [[2, 8, 8, 1, 10], [5, 3], [6, 2, 7]]
    rejected = [[9, 9, 1], [2, 6, 3, 7, 4, 1], [6, 2, 7]]  # pair 2: identical answers
    batch = {}
    batch["prompt_input_ids"], batch["prompt_attention_mask"] = pad(prompts, left=True)
    batch["chosen_input_ids"], batch["chosen_attention_mask"] = pad(chosen, left=False)
    batch["rejected_input_ids"], batch["rejected_attention_mask"] = pad(rejected, left=False)

    pairs = []
    for i in range(len(prompts)):
        pc, lc = token_logps(e_pol, prompts[i], chosen[i])
        pr, lr = token_logps(e_pol, prompts[i], rejected[i])
        rc, _ = token_logps(e_ref, prompts[i], chosen[i])
        rr, _ = token_logps(e_ref, prompts[i], rejected[i])
        pairs.append(dict(policy_chosen=pc, ref_chosen=rc, policy_rejected=pr,
                          ref_rejected=rr, logits_sum_chosen=lc,
                          logits_count_chosen=len(pc) * V, logits_sum_rejected=lr,
                          logits_count_rejected=len(pr) * V))
    if precomputed_ref:
        # The dataset carries reference log-probs (TRL's precompute path); in pair 2 they
        # equal the policy's, so both rewards are 0 and the accuracy counts it as wrong.
        pairs[2]["ref_chosen"] = list(pairs[2]["policy_chosen"])
        pairs[2]["ref_rejected"] = list(pairs[2]["policy_rejected"])
        batch["ref_chosen_logps"] = torch.tensor([sum(p["ref_chosen"]) for p in pairs],
                                                 dtype=torch.float64)
        batch["ref_rejected_logps"] = torch.tensor([sum(p["ref_rejected"]) for p in pairs],
                                                   dtype=torch.float64)

    t = fake_trainer(policy, ref, beta, label_smoothing)
    with torch.no_grad():
        out = t.concatenated_forward(policy, batch)
        for i, p in enumerate(pairs):
            assert abs(float(out["chosen_logps"][i]) - sum(p["policy_chosen"])) < 1e-12
            assert abs(float(out["rejected_logps"][i]) - sum(p["policy_rejected"])) < 1e-12
        loss, metrics = t.get_batch_loss_metrics(policy, batch)

    # Gradient of the batch loss with respect to each pair's summed policy log-probs.
    pc = torch.tensor([sum(p["policy_chosen"]) for p in pairs], dtype=torch.float64,
                      requires_grad=True)
    pr = torch.tensor([sum(p["policy_rejected"]) for p in pairs], dtype=torch.float64,
                      requires_grad=True)
    rc = torch.tensor([sum(p["ref_chosen"]) for p in pairs], dtype=torch.float64)
    rr = torch.tensor([sum(p["ref_rejected"]) for p in pairs], dtype=torch.float64)
    losses, _, _ = t.dpo_loss(pc, pr, rc, rr)
    losses.mean().backward()
    assert abs(float(losses.mean()) - float(loss)) < 1e-12

    return dict(name=name, beta=beta, label_smoothing=label_smoothing, pairs=pairs,
                expected=dict(loss=float(loss),
                              metrics={k: float(v) for k, v in metrics.items()},
                              grad_pair_chosen=pc.grad.tolist(),
                              grad_pair_rejected=pr.grad.tolist()))


def main():
    out_dir = sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures/method"
    cases = [
        make_case("reference model, beta 0.1", 1, 0.1, 0.0, precomputed_ref=False),
        make_case("precomputed reference, cDPO eps 0.1, beta 0.5", 2, 0.5, 0.1,
                  precomputed_ref=True),
        make_case("reference model, eps 0.25, beta 2", 3, 2.0, 0.25, precomputed_ref=False),
    ]
    doc = dict(about="TRL DPOTrainer (loss_type sigmoid) on a bigram stand-in model; made by "
                     "tests/parity/make_method_trl.py",
               versions=dict(trl=trl.__version__, torch=torch.__version__), cases=cases)
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "trl_dpo.json"), "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
