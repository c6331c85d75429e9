#!/usr/bin/python3
"""The training step of `aspo bench` in PyTorch, printed as one JSON line like aspo's.

    python3 bench/train_step_torch.py [--impl auto|hf|plain] [--loss dpo|aspo]
        [--device cpu|cuda] [--dtype f32|bf16|f16] [--checkpointing] [--peak-tflops X]
        [--layers N] [--dim N] [--heads N] [--ffn N] [--vocab N] [--seq N] [--prompt N]
        [--pairs N] [--rank N] [--unit N] [--steps N] [--warmup N] [--threads N] [--seed N]

One step = reference forward with the adapters disabled under no_grad, policy forward and
backward on the chosen and rejected sequences in one batch (TRL's concatenated_forward:
log_softmax over the vocabulary, gather of the labels, sums over the response tokens), the
DPO or ASPO loss, clip_grad_norm_(1.0), AdamW. Sizes, LoRA (r, alpha = 2r, dropout 0.05 on
q,k,v,o,gate,up,down), data (random ids, shared prompt, no padding) and ASPO's synthetic
sentences of --unit tokens match `aspo bench`.

--impl hf uses transformers' LlamaForCausalLM with a PEFT LoRA model (attention "sdpa" on
torch >= 2, "eager" on 1.13, which has no SDPA); --impl plain a LLaMA written below in plain
PyTorch with the same math (eager attention); auto takes hf when transformers and peft
import. --dtype is the dtype the model is built in (the frozen weights and so the hidden
states, as from_pretrained(torch_dtype=...)); the LoRA weights stay f32 as PEFT's
autocast_adapter_dtype keeps them, like aspo's, and the log-softmax runs on f32 logits, as
aspo's do. With bf16 or f16 the forward passes run under torch.autocast in that dtype, as HF
Trainer runs them with bf16=True / fp16=True (every linear, the adapter's too, multiplies in
half precision; aspo's --activation-dtype does the same), and f16 adds GradScaler, as
fp16=True does (aspo's dynamic loss scaling). --checkpointing re-runs each decoder layer in
backward (non-reentrant torch.utils.checkpoint, through gradient_checkpointing_enable for hf). On cuda each step ends
with torch.cuda.synchronize() and peak_device_mb is torch.cuda.max_memory_allocated().
model_flops_per_step, achieved_tflops, mfu and epoch_s_7b_16k come from bench/flops.py, the
formula aspo/train/bench.c uses too. Out of memory prints {"src": "torch", "error": "out of
memory", ...} and exits 1.

Tested with Debian's python3-torch 1.13.1 (reports 1.13.0a0), and in a venv made with
    python3 -m venv --system-site-packages VENV
    VENV/bin/pip install transformers==4.44.2 tokenizers==0.19.1 huggingface-hub==0.24.6 safetensors
    VENV/bin/pip install --no-deps peft==0.12.0 accelerate==0.33.0
(--no-deps keeps Debian's torch); and on the CPU with torch 2.11.0, transformers 5.17.0 and
peft 0.21.2 (the GPU machine's torch and transformers). Imports bench/bench_timing.py and bench/flops.py from beside it. A benchmark, not a
test: it never asserts.
"""
import argparse
import contextlib
import json
import math
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.utils.checkpoint

import flops
from bench_timing import blas_fields, peak_rss_mb, set_threads, time_calls

LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
DTYPES = {"f32": torch.float32, "bf16": torch.bfloat16, "f16": torch.float16}
TORCH2 = int(torch.__version__.split(".")[0]) >= 2


@contextlib.contextmanager
def building(device, dtype):
    """Modules made inside have their parameters in dtype, and on torch >= 2 on device
    (1.13 has no default device: the caller moves the model after)."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device) if TORCH2 else contextlib.nullcontext():
            yield
    finally:
        torch.set_default_dtype(old)


# ---- plain PyTorch LLaMA with LoRA (the same math as transformers 4.44 eager + PEFT) ----

class LoraLinear(nn.Module):
    def __init__(self, fin, fout, r, alpha, dropout):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(fout, fin).normal_(0, 0.02), requires_grad=False)
        # f32 adapters whatever the model's dtype, as PEFT's autocast_adapter_dtype
        self.lora_A = nn.Parameter(torch.empty(r, fin, dtype=torch.float32))
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))
        self.lora_B = nn.Parameter(torch.zeros(fout, r, dtype=torch.float32))
        self.scaling = alpha / r
        self.dropout = nn.Dropout(dropout)
        self.enabled = True

    def forward(self, x):
        y = F.linear(x, self.weight)
        if self.enabled:  # PEFT's LoRA forward: the adapter in its dtype, the sum in y's
            a = F.linear(self.dropout(x).to(self.lora_A.dtype), self.lora_A)
            y = (y + F.linear(a, self.lora_B) * self.scaling).to(x.dtype)
        return y


class RMSNorm(nn.Module):
    def __init__(self, dim, eps=1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim), requires_grad=False)
        self.eps = eps

    def forward(self, x):  # in f32, as LlamaRMSNorm
        h = x.float()
        var = h.pow(2).mean(-1, keepdim=True)
        return self.weight * (h * torch.rsqrt(var + self.eps)).to(x.dtype)


def rotate_half(x):
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


class Layer(nn.Module):
    def __init__(self, a, lin):
        super().__init__()
        self.H, self.D = a.heads, a.dim // a.heads
        self.q, self.k, self.v, self.o = (lin(a.dim, a.dim) for _ in range(4))
        self.gate, self.up = lin(a.dim, a.ffn), lin(a.dim, a.ffn)
        self.down = lin(a.ffn, a.dim)
        self.norm1, self.norm2 = RMSNorm(a.dim), RMSNorm(a.dim)

    def forward(self, x, cos, sin, mask):
        B, T, C = x.shape
        h = self.norm1(x)
        q, k, v = (p(h).view(B, T, self.H, self.D).transpose(1, 2)
                   for p in (self.q, self.k, self.v))
        q, k = q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin
        w = torch.matmul(q, k.transpose(2, 3)) / math.sqrt(self.D) + mask  # (B,H,T,T)
        w = F.softmax(w, dim=-1, dtype=torch.float32).to(q.dtype)
        a = torch.matmul(w, v).transpose(1, 2).reshape(B, T, C)
        x = x + self.o(a)
        h = self.norm2(x)
        return x + self.down(F.silu(self.gate(h)) * self.up(h))


class PlainLlama(nn.Module):
    def __init__(self, a):
        super().__init__()
        lin = lambda i, o: LoraLinear(i, o, a.rank, 2 * a.rank, 0.05)  # noqa: E731
        self.embed = nn.Parameter(torch.empty(a.vocab, a.dim).normal_(0, 0.02),
                                  requires_grad=False)
        self.layers = nn.ModuleList(Layer(a, lin) for _ in range(a.layers))
        self.norm = RMSNorm(a.dim)
        self.lm_head = nn.Parameter(torch.empty(a.vocab, a.dim).normal_(0, 0.02),
                                    requires_grad=False)
        self.checkpointing = a.checkpointing
        D = a.dim // a.heads
        inv = 1.0 / (10000 ** (torch.arange(0, D, 2).float() / D))
        f = torch.outer(torch.arange(a.seq).float(), inv)
        emb = torch.cat((f, f), dim=-1)  # in f32, then in the model's dtype, as HF's rotary
        dt = torch.get_default_dtype()
        self.register_buffer("cos", emb.cos().to(dt), persistent=False)
        self.register_buffer("sin", emb.sin().to(dt), persistent=False)

    def set_adapters(self, on):
        for m in self.modules():
            if isinstance(m, LoraLinear):
                m.enabled = on

    def forward(self, ids, attention_mask):
        B, T = ids.shape
        dt, lowest = self.embed.dtype, torch.finfo(self.embed.dtype).min
        causal = torch.full((T, T), lowest, dtype=dt, device=ids.device).triu(1)
        pad = (1.0 - attention_mask[:, None, None, :].to(dt)) * lowest
        mask = (causal[None, None] + pad).clamp(min=lowest)
        x = F.embedding(ids, self.embed)
        for layer in self.layers:
            if self.checkpointing and self.training:
                x = torch.utils.checkpoint.checkpoint(layer, x, self.cos[:T], self.sin[:T], mask,
                                                      use_reentrant=False)
            else:
                x = layer(x, self.cos[:T], self.sin[:T], mask)
        return F.linear(self.norm(x), self.lm_head)


class Plain:
    name = "plain"
    attention = "eager"

    def __init__(self, a):
        with building(a.device, DTYPES[a.dtype]):
            self.model = PlainLlama(a)

    def logits(self, ids, mask):
        return self.model(ids, mask)

    def reference_logits(self, ids, mask):
        self.model.set_adapters(False)
        try:
            return self.model(ids, mask)
        finally:
            self.model.set_adapters(True)


class HF:
    name = "hf"

    def __init__(self, a):
        import transformers
        from peft import LoraConfig, get_peft_model
        self.versions = {"transformers": transformers.__version__,
                         "peft": sys.modules["peft"].__version__}
        dtype = DTYPES[a.dtype]
        self.attention = "sdpa" if TORCH2 else "eager"
        # transformers 5 renamed torch_dtype to dtype
        dtype_key = "dtype" if int(transformers.__version__.split(".")[0]) >= 5 else "torch_dtype"
        cfg = transformers.LlamaConfig(
            vocab_size=a.vocab, hidden_size=a.dim, intermediate_size=a.ffn,
            num_hidden_layers=a.layers, num_attention_heads=a.heads, num_key_value_heads=a.heads,
            max_position_embeddings=max(2048, a.seq), rms_norm_eps=1e-6, bos_token_id=1,
            eos_token_id=2, tie_word_embeddings=False, attn_implementation=self.attention,
            **{dtype_key: dtype})
        lcfg = LoraConfig(r=a.rank, lora_alpha=2 * a.rank, lora_dropout=0.05,
                          target_modules=LORA_TARGETS, task_type="CAUSAL_LM")
        with building(a.device, dtype):  # PEFT then casts the adapters to f32
            self.model = get_peft_model(transformers.LlamaForCausalLM(cfg), lcfg)
        if a.checkpointing:
            self.model.gradient_checkpointing_enable(
                gradient_checkpointing_kwargs={"use_reentrant": False})

    def logits(self, ids, mask):
        return self.model(input_ids=ids, attention_mask=mask, use_cache=False).logits

    def reference_logits(self, ids, mask):
        with self.model.disable_adapter():
            return self.logits(ids, mask)


# ---- data and losses ----

def make_batch(a, prompt):
    """(2P,T) ids: chosen rows, then rejected rows (TRL's order); labels -100 outside responses.
    Drawn on the CPU (the same ids whatever the device), then moved to a.device."""
    g = torch.Generator().manual_seed(a.seed)
    rows = []
    for _ in range(a.pairs):
        p = torch.randint(3, a.vocab, (prompt,), generator=g)
        p[0] = 1  # BOS
        rows.append(p)
    ids = []
    for side in range(2):
        for i in range(a.pairs):
            r = torch.randint(3, a.vocab, (a.seq - prompt,), generator=g)
            r[-1] = 2  # EOS
            ids.append(torch.cat([rows[i], r]))
    ids = torch.stack(ids)
    labels = ids.clone()
    labels[:, :prompt] = -100
    return ids.to(a.device), torch.ones_like(ids).to(a.device), labels.to(a.device)


def token_logps(logits, labels):
    """TRL's get_batch_logps per token: (2P,T-1) log p of label t+1 at position t, 0 outside."""
    labels = labels[:, 1:].clone()
    logits = logits[:, :-1, :].float()  # the log-softmax in f32 whatever the model's dtype
    loss_mask = labels != -100
    labels[~loss_mask] = 0
    per_token = torch.gather(logits.log_softmax(-1), 2, labels.unsqueeze(2)).squeeze(2)
    return per_token * loss_mask, loss_mask


def dpo_loss(pol, ref, mask, P, beta):
    s, sr = pol.sum(-1), ref.sum(-1)
    margin = beta * ((s[:P] - sr[:P]) - (s[P:] - sr[P:]))
    return -F.logsigmoid(margin).mean()


def aspo_loss(pol, ref, mask, P, beta, unit):
    """ASPO with alpha 0 (text only: perplexity weights), policy PPL, k per pair (docs/ASPO.md)."""
    losses = []
    for i in range(P):
        m = mask[i]
        lp, lr = pol[i][m], ref[i][m]  # (N_c) chosen response tokens
        n, dev = lp.shape[0], lp.device
        u = torch.arange(n, device=dev) // unit
        U = int(u[-1]) + 1
        zeros = lambda: torch.zeros(U, device=dev)  # noqa: E731
        with torch.no_grad():
            cnt = zeros().index_add_(0, u, torch.ones(n, device=dev))
            ppl = torch.exp(-zeros().index_add_(0, u, lp.detach()) / cnt)
            neg = -ppl
            span = neg.max() - neg.min()
            w = (neg - neg.min()) / span if U > 1 and span > 0 else zeros()
        r_tok = beta * (lp - lr)
        r_unit = zeros().index_add(0, u, r_tok)
        with torch.no_grad():
            Rc, Rs = r_unit.sum(), ((1 + w) * r_unit).sum()
            k = Rc / Rs if Rs != 0 else torch.tensor(float("nan"), device=dev)
            if not (Rs != 0 and 0.5 <= k <= 1):
                k = n / (1 + w[u]).sum()
        m_r = mask[P + i]
        r_rej = beta * (pol[P + i][m_r] - ref[P + i][m_r]).sum()
        margin = k * ((1 + w) * r_unit).sum() - r_rej
        losses.append(-F.logsigmoid(margin))
    return torch.stack(losses).mean()


def preference_step(model, logits, reference_logits, labels, a):
    """One optimizer step as TRL's DPOTrainer takes it, on the batch the two functions run
    (logits: the policy's (2P,T,V), reference_logits: with the adapters off): the reference
    under no_grad, the policy with the tape, the --loss, clip_grad_norm_(1.0), AdamW.
    Returns (step, the trainable parameters); step() returns the loss."""
    model.train()  # LoRA dropout on, as in training
    params = [q for q in model.parameters() if q.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4)
    P, beta = a.pairs, 0.1
    half = a.dtype != "f32"
    amp = (lambda: torch.autocast(device_type=a.device, dtype=DTYPES[a.dtype])) if half \
        else contextlib.nullcontext
    scaler = torch.cuda.amp.GradScaler() if a.dtype == "f16" and a.device == "cuda" else None

    def step():
        with torch.no_grad(), amp():
            ref, _ = token_logps(reference_logits(), labels)
        with amp():
            pol, mask = token_logps(logits(), labels)
        loss = (dpo_loss(pol, ref, mask, P, beta) if a.loss == "dpo"
                else aspo_loss(pol, ref, mask, P, beta, a.unit))
        if scaler:
            scaler.scale(loss).backward()
            scaler.unscale_(opt)
        else:
            loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        if scaler:
            scaler.step(opt)
            scaler.update()
        else:
            opt.step()
        opt.zero_grad(set_to_none=True)
        return float(loss.detach())

    return step, params


def is_out_of_memory(e):
    """A CUDA (or host) allocation failure, whichever class this torch raises it as."""
    oom = getattr(torch.cuda, "OutOfMemoryError", ())
    return isinstance(e, (MemoryError,) + ((oom,) if oom else ())) or "out of memory" in str(e)


def device_name(device):
    return torch.cuda.get_device_name() if device == "cuda" else "cpu"


def run(a):
    prompt = a.prompt or a.seq // 4
    blas, blas_threads = set_threads(torch, a.threads, a.blas_threads)
    torch.manual_seed(a.seed)

    impl = None
    if a.impl in ("auto", "hf"):
        try:
            impl = HF(a)
        except ImportError as e:
            if a.impl == "hf":
                raise
            print(f"# transformers/peft not importable ({e}); using --impl plain", file=sys.stderr)
    if impl is None:
        impl = Plain(a)
    model = impl.model.to(a.device)  # torch 1.13 built it on the CPU
    ids, attn, labels = make_batch(a, prompt)
    step, params = preference_step(model, lambda: impl.logits(ids, attn),
                                   lambda: impl.reference_logits(ids, attn), labels, a)
    cuda = a.device == "cuda"
    t = time_calls(step, a.warmup, a.steps, sync=torch.cuda.synchronize if cuda else None)
    tokens = int(attn.sum())
    name = device_name(a.device)
    peak = a.peak_tflops if a.peak_tflops > 0 else flops.peak_tflops(name, a.dtype)
    out = {"src": "torch", "impl": impl.name, "attention": impl.attention, "loss": a.loss,
           "layers": a.layers, "dim": a.dim, "heads": a.heads, "ffn": a.ffn, "vocab": a.vocab,
           "seq": a.seq, "prompt": prompt, "pairs": a.pairs, "rank": a.rank, "dtype": a.dtype,
           "lora_dtype": str(params[0].dtype).replace("torch.", ""),
           "checkpointing": a.checkpointing, "steps": a.steps,
           "threads": torch.get_num_threads(), "blas_threads": blas_threads or None,
           "torch_version": torch.__version__, **blas_fields(blas),
           "trainable": sum(q.numel() for q in params),
           "params": sum(q.numel() for q in model.parameters()),
           "tokens_per_step": tokens, **t.fields("step"),
           "train_tokens_per_s": round(tokens / t.mean, 1), "cpu_s_per_step": round(t.cpu, 4),
           "peak_rss_mb": peak_rss_mb(),
           "peak_device_mb": round(torch.cuda.max_memory_allocated() / 2**20, 1) if cuda else None,
           "device": name, **flops.rates(a, a.seq, t.mean, peak),
           "loss_first": round(t.results[0], 6), "loss_last": round(t.results[-1], 6)}
    out.update(getattr(impl, "versions", {}))
    print(json.dumps(out), flush=True)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--impl", choices=["auto", "hf", "plain"], default="auto")
    p.add_argument("--loss", choices=["dpo", "aspo"], default="dpo")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--dtype", choices=list(DTYPES), default="f32",
                   help="dtype the model is built in (the LoRA weights stay f32)")
    p.add_argument("--checkpointing", action="store_true",
                   help="re-run each decoder layer in backward")
    p.add_argument("--peak-tflops", type=float, default=0.0,
                   help="the device's dense peak for --dtype, for mfu (0: bench/flops.py's "
                        "table by device name; unknown: null)")
    p.add_argument("--blas-threads", type=int, default=0,
                   help="OpenBLAS threads (default: --threads)")
    for name, v in [("layers", 4), ("dim", 256), ("heads", 8), ("ffn", 688), ("vocab", 4096),
                    ("seq", 256), ("prompt", 0), ("pairs", 2), ("rank", 16), ("unit", 16),
                    ("steps", 5), ("warmup", 2), ("threads", 0), ("seed", 1)]:
        p.add_argument("--" + name, type=int, default=v)
    a = p.parse_args()
    if a.device == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda: this torch (%s) sees no CUDA device" % torch.__version__)
    if a.device == "cpu" and a.dtype == "f16" and not TORCH2:
        p.error("--dtype f16 --device cpu: torch %s has no f16 matmul on the CPU"
                % torch.__version__)
    try:
        run(a)
    except (RuntimeError, MemoryError) as e:
        if not is_out_of_memory(e):
            raise
        # One JSON line, as aspo bench prints one, so scripts/gpu-check.sh can say so.
        print(json.dumps({"src": "torch", "error": "out of memory", "device": a.device,
                          "dtype": a.dtype, "checkpointing": a.checkpointing,
                          "message": str(e).splitlines()[0][:300]}), flush=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
