"""The official package's greedy continuation of a fixed prompt, for the bundled model.

    RWKV_V7_ON=1 python make_greedy_golden.py out/demo-bf16.pth ../../models/demo/greedy.json
"""
import json, os, sys
os.environ["RWKV_V7_ON"] = "1"; os.environ["RWKV_JIT_ON"] = "1"; os.environ["RWKV_CUDA_ON"] = "0"
import torch
torch.set_num_threads(1)
from rwkv.model import RWKV

PROMPT = "It is a truth universally acknowledged"
N = 64
pth, out = sys.argv[1], sys.argv[2]
model = RWKV(model=pth[:-4], strategy="cpu fp32")
logits, state = model.forward([b + 1 for b in PROMPT.encode()], None)
ids = []
for _ in range(N):
    tok = int(torch.argmax(logits))
    ids.append(tok)
    logits, state = model.forward([tok], state)
text = bytes(t - 1 for t in ids if t > 0).decode("utf-8", errors="replace")
json.dump({"prompt": PROMPT, "n": N, "ids": ids, "text": text, "checkpoint": os.path.basename(pth),
           "strategy": "cpu fp32"}, open(out, "w"), indent=1)
print(repr(text))
