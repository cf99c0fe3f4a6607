"""Golden logits of the bundled demo model from the official `rwkv` package.

Writes models/demo/golden.json (tokens, versions) and models/demo/golden_logits.f32
(raw little-endian f32, [T, 257]): the official "cpu fp32" logits of the bf16 export
for token 0 followed by the first 127 bytes of the held-out text.

    RWKV_V7_ON=1 python make_golden.py out/demo-bf16.pth ../../models/demo
"""
import json, os, sys
os.environ["RWKV_V7_ON"] = "1"; os.environ["RWKV_JIT_ON"] = "1"; os.environ["RWKV_CUDA_ON"] = "0"
import numpy as np, torch
torch.set_num_threads(1)
import rwkv
from rwkv.model import RWKV

pth, out = sys.argv[1], sys.argv[2]
here = os.path.dirname(os.path.abspath(__file__))
text = open(os.path.join(here, "data", "heldout.txt"), "rb").read()[:127]
tokens = [0] + [b + 1 for b in text]
model = RWKV(model=pth[:-4], strategy="cpu fp32")
logits, _ = model.forward(tokens, None, full_output=True)
logits = logits.float().numpy().astype("<f4")
logits.tofile(os.path.join(out, "golden_logits.f32"))
json.dump({
    "checkpoint": os.path.basename(pth), "tokens": tokens, "text": text.decode("utf-8"),
    "vocab": int(logits.shape[1]), "torch_version": torch.__version__,
    "rwkv_version": getattr(rwkv, "__version__", "0.8.32"), "strategy": "cpu fp32",
    "command": "RWKV_V7_ON=1 python tools/train-demo/make_golden.py tools/train-demo/out/demo-bf16.pth models/demo",
}, open(os.path.join(out, "golden.json"), "w"), indent=1)
print("wrote", logits.shape, "std", float(logits.std()))
