#!/usr/bin/env python3
"""Export a training checkpoint to the official x070 .pth layout (spec §3.1).

    python export.py out/ckpt.pt out/demo.pth [--dtype fp32|bf16]

train.py already writes out/demo.pth (fp32) at every checkpoint; this is for
re-exporting, e.g. as bf16 like the released World/G1 files.
"""
import argparse

import torch

from rwkv7_train import RWKV7

ap = argparse.ArgumentParser()
ap.add_argument("ckpt")
ap.add_argument("out")
ap.add_argument("--dtype", default="fp32", choices=["fp32", "bf16"])
a = ap.parse_args()
ck = torch.load(a.ckpt, map_location="cpu", weights_only=False)
m = RWKV7(n_layer=ck["args"]["layers"], n_embd=ck["args"]["embd"], vocab=257)
m.load_state_dict(ck["model"])
sd = m.official_state_dict(torch.float32 if a.dtype == "fp32" else torch.bfloat16)
torch.save(sd, a.out)
print(f"wrote {a.out}: {len(sd)} tensors, step {ck['step']}, {a.dtype}")
