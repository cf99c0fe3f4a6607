#!/usr/bin/env python3
"""Evaluate an exported demo .pth with the OFFICIAL `rwkv` pip package (cpu fp32).

    RWKV_V7_ON=1 python eval_official.py out/demo.pth [--bytes 20000] [--json out/eval.json]

1. Checks the file has every key of spec §3.1 (incl. layer-0 v0/v1/v2).
2. Logit agreement: our training code (rwkv7_train.RWKV7, GPT/parallel form) vs the
   official package (`full_output=True`) on a held-out snippet -> max |Δ|.
3. Held-out bits per byte with the official package: token 0 (end-of-text) followed by
   the first --bytes tokens of data/heldout.u16, fed through model.forward in chunks of
   --chunk tokens carrying the RNN state; bpb = sum(-log2 p(next byte)) / bytes.
4. Prints a few sampled continuations (official model, our own byte sampler).
"""
import argparse, importlib.metadata, json, math, os, sys, time

os.environ["RWKV_V7_ON"] = "1"
os.environ.setdefault("RWKV_JIT_ON", "1")
os.environ["RWKV_CUDA_ON"] = "0"

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from rwkv7_train import RWKV7, lora_ranks  # noqa: E402


def load_ours(sd):
    V, C = sd["emb.weight"].shape
    L = 1 + max(int(k.split(".")[1]) for k in sd if k.startswith("blocks."))
    m = RWKV7(n_layer=L, n_embd=C, vocab=V)
    assert m.ranks == (sd["blocks.0.att.w1"].shape[1], sd["blocks.0.att.a1"].shape[1],
                       sd["blocks.1.att.v1"].shape[1] if L > 1 else m.ranks[2], sd["blocks.0.att.g1"].shape[1])
    expect = m.official_state_dict()
    assert list(expect.keys()) == list(sd.keys()), "key set/order differs from spec §3.1"
    for k in sd:
        assert tuple(expect[k].shape) == tuple(sd[k].shape), (k, sd[k].shape, expect[k].shape)
    m.load_state_dict({k: v.float() for k, v in sd.items()})
    return m.eval(), (L, C, V)


def sample(model, prompt, n, temp, top_p, gen):
    toks = [0] + [b + 1 for b in prompt.encode("utf-8")]
    out, state = model.forward(toks, None)
    res = []
    for _ in range(n):
        p = torch.softmax(out.float() / temp, -1)
        sp, si = torch.sort(p, descending=True)
        keep = torch.cumsum(sp, 0) - sp < top_p
        sp = sp * keep
        t = int(si[torch.multinomial(sp / sp.sum(), 1, generator=gen)])
        if t == 0:
            break
        res.append(t - 1)
        out, state = model.forward([t], state)
    return prompt + bytes(res).decode("utf-8", errors="replace")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("pth")
    ap.add_argument("--data", default=os.path.join(HERE, "data"))
    ap.add_argument("--bytes", type=int, default=20000)
    ap.add_argument("--chunk", type=int, default=256)
    ap.add_argument("--cmp-len", type=int, default=512)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--samples", type=int, default=3)
    ap.add_argument("--sample-len", type=int, default=300)
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    from rwkv.model import RWKV

    sd = torch.load(a.pth, map_location="cpu", weights_only=True)
    ours, (L, C, V) = load_ours(sd)
    print(f"{a.pth}: L={L} C={C} H={C // 64} V={V} ranks={lora_ranks(C)} dtype={sd['emb.weight'].dtype} keys={len(sd)}")
    stem = a.pth[:-4] if a.pth.endswith(".pth") else a.pth
    off = RWKV(model=stem, strategy="cpu fp32")
    held = np.fromfile(os.path.join(a.data, "heldout.u16"), dtype=np.uint16).astype(np.int64)

    # --- logit agreement, ours (GPT form) vs official (full_output) on a held-out snippet
    snip = [0] + held[50000:50000 + a.cmp_len - 1].tolist()
    with torch.no_grad():
        lo = ours(torch.tensor([snip]))[0]
    lf, _ = off.forward(snip, None, full_output=True)
    dmax = (lo - lf).abs().max().item()
    argmax_agree = (lo.argmax(-1) == lf.argmax(-1)).float().mean().item()
    print(f"logits ours vs official on {len(snip)} held-out tokens: max|d|={dmax:.3e} (logit std {lf.std().item():.3f}),"
          f" argmax agreement {argmax_agree * 100:.2f}%")

    # --- held-out bits per byte with the official package (chunked RNN, carried state)
    seq = [0] + held[:a.bytes].tolist()
    assert 0 not in seq[1:], "slice crosses a document boundary"
    t0 = time.time()
    state, nll = None, 0.0
    for i in range(0, a.bytes, a.chunk):
        inp = seq[i:min(i + a.chunk, a.bytes)]
        tgt = torch.tensor(seq[i + 1:i + 1 + len(inp)])
        logits, state = off.forward(inp, state, full_output=True)
        if logits.dim() == 1:
            logits = logits[None]
        nll += F.cross_entropy(logits.float(), tgt, reduction="sum").item()
    bpb = nll / math.log(2) / a.bytes
    print(f"held-out bits/byte (official rwkv {importlib.metadata.version('rwkv')}, cpu fp32,"
          f" first {a.bytes} bytes of heldout, chunk {a.chunk}): {bpb:.4f}   [{time.time() - t0:.0f}s]")

    gen = torch.Generator().manual_seed(0)
    samples = []
    for prompt in ["It is a truth universally acknowledged", "\"My dear,\" said", "The "][:a.samples]:
        s = sample(off, prompt, a.sample_len, 0.8, 0.9, gen)
        samples.append(s)
        print("---- sample (T=0.8, top_p=0.9):\n" + s)
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"pth": a.pth, "L": L, "C": C, "V": V, "logit_max_abs_diff": dmax, "cmp_tokens": len(snip),
                       "argmax_agreement": argmax_agree, "heldout_bytes": a.bytes, "heldout_bpb_f32": bpb,
                       "samples": samples}, f, indent=1)


if __name__ == "__main__":
    main()
