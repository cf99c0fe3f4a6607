#!/usr/bin/env python3
"""Plot the training log:  python plot_loss.py out/train_log.csv ../../models/demo/loss.png"""
import csv, os, sys

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt

HERE = os.path.dirname(os.path.abspath(__file__))
src = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "out", "train_log.csv")
dst = sys.argv[2] if len(sys.argv) > 2 else os.path.join(HERE, "..", "..", "models", "demo", "loss.png")
rows = list(csv.DictReader(open(src)))
tok = [int(r["tokens"]) / 1e6 for r in rows]
tr = [float(r["train_bpb"]) for r in rows]
ev = [(int(r["tokens"]) / 1e6, float(r["heldout_bpb"])) for r in rows if r["heldout_bpb"]]
fig, ax = plt.subplots(figsize=(8, 4.5), dpi=100)
ax.plot(tok, tr, label="train (running mean over 10 steps)", lw=1.2)
ax.plot([e[0] for e in ev], [e[1] for e in ev], "o-", label="held-out (16 x 256 bytes)", lw=1.5, ms=3)
ax.set_xlabel("training tokens (bytes), millions")
ax.set_ylabel("bits per byte")
ax.set_ylim(1.0, min(5.0, max(tr) + 0.2))
ax.grid(alpha=0.3)
last = rows[-1]
ax.set_title(f"RWKV-7 demo (L4 C192, byte-level) on Jane Austen: step {last['step']}, "
             f"{float(last['elapsed_s']) / 60:.0f} min, 1 CPU thread", fontsize=10, pad=12)
ax2 = ax.secondary_xaxis("top", functions=(lambda t: t * 1e6 / (int(rows[0]["tokens"]) / int(rows[0]["step"])),
                                           lambda s: s * (int(rows[0]["tokens"]) / int(rows[0]["step"])) / 1e6))
ax2.set_xlabel("step")
ax.legend()
fig.tight_layout()
os.makedirs(os.path.dirname(os.path.abspath(dst)), exist_ok=True)
fig.savefig(dst)
print("wrote", dst)
