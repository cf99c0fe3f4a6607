#!/usr/bin/env python3
"""Train the bundled demo RWKV-7 (byte-level) on CPU, one thread, fp32.

    nice -n 10 python train.py            # defaults = the shipped demo model

Writes to --out (default tools/train-demo/out/):
    train_log.csv   step,tokens,elapsed_s,lr,train_loss,train_bpb,heldout_loss,heldout_bpb
    ckpt.pt         latest training checkpoint (model + optimizer + step); --resume continues from it
    demo.pth        latest weights in the official x070 .pth layout (fp32), refreshed at each checkpoint
"""
import argparse, csv, math, os, time

import numpy as np
import torch
import torch.nn.functional as F

from rwkv7_train import RWKV7

HERE = os.path.dirname(os.path.abspath(__file__))


def get_args(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=os.path.join(HERE, "data"))
    ap.add_argument("--out", default=os.path.join(HERE, "out"))
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--embd", type=int, default=192)
    ap.add_argument("--ctx", type=int, default=256)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--steps", type=int, default=700)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--lr-final", type=float, default=1e-4)
    ap.add_argument("--warmup", type=int, default=30)
    ap.add_argument("--wd", type=float, default=0.1)
    ap.add_argument("--clip", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--time-budget", type=float, default=54 * 60, help="stop after this many seconds (wall)")
    ap.add_argument("--log-every", type=int, default=10)
    ap.add_argument("--eval-every", type=int, default=50)
    ap.add_argument("--ckpt-every", type=int, default=50)
    ap.add_argument("--eval-windows", type=int, default=16)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--bench", type=int, default=0, help="only time this many steps, write nothing")
    return ap.parse_args(argv)


def lr_at(step, a, elapsed=0.0):
    """Linear warmup, then cosine to lr_final. Progress is the larger of step progress and
    wall-time progress (elapsed / time_budget), so the schedule always finishes annealing
    inside the time budget even on a slower / busier machine."""
    if step < a.warmup:
        return a.lr * (step + 1) / a.warmup
    p = min(1.0, max((step - a.warmup) / max(1, a.steps - a.warmup), elapsed / a.time_budget))
    return a.lr_final + 0.5 * (a.lr - a.lr_final) * (1 + math.cos(math.pi * p))


def make_optimizer(model, a):
    decay, no_decay, w0 = [], [], []
    for n, p in model.named_parameters():
        if n.endswith("att.w0"):
            w0.append(p)
        elif p.dim() >= 2 and n.endswith(".weight"):   # Linear weights, emb, head (as RWKV-LM's lr_decay group)
            decay.append(p)
        else:
            no_decay.append(p)
    groups = [
        {"params": decay, "weight_decay": a.wd, "lr_scale": 1.0},
        {"params": no_decay, "weight_decay": 0.0, "lr_scale": 1.0},
        {"params": w0, "weight_decay": 0.0, "lr_scale": 2.0},
    ]
    return torch.optim.AdamW(groups, lr=a.lr, betas=(0.9, 0.99), eps=1e-8)


def heldout_windows(held, ctx, n):
    starts = np.linspace(0, len(held) - ctx - 2, n).astype(np.int64)
    x = np.stack([held[s:s + ctx] for s in starts]).astype(np.int64)
    y = np.stack([held[s + 1:s + ctx + 1] for s in starts]).astype(np.int64)
    return torch.from_numpy(x), torch.from_numpy(y)


@torch.no_grad()
def evaluate(model, xy):
    x, y = xy
    loss = 0.0
    for i in range(0, len(x), 8):
        logits = model(x[i:i + 8])
        loss += F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y[i:i + 8].reshape(-1), reduction="sum").item()
    return loss / y.numel()


def main(argv=None):
    a = get_args(argv)
    torch.set_num_threads(a.threads)
    train = np.fromfile(os.path.join(a.data, "train.u16"), dtype=np.uint16).astype(np.int64)
    held = np.fromfile(os.path.join(a.data, "heldout.u16"), dtype=np.uint16).astype(np.int64)
    model = RWKV7(n_layer=a.layers, n_embd=a.embd, vocab=257, seed=a.seed)
    opt = make_optimizer(model, a)
    nparam = sum(p.numel() for p in model.parameters())
    print(f"L={a.layers} C={a.embd} H={a.embd // 64} ranks(Dw,Da,Dv,Dg)={model.ranks} params={nparam}"
          f" ctx={a.ctx} batch={a.batch} steps={a.steps} train_tokens={len(train)} heldout_tokens={len(held)}", flush=True)
    rng = np.random.default_rng(a.seed)
    step, t_prev = 0, 0.0
    os.makedirs(a.out, exist_ok=True)
    ckpt_path, log_path = os.path.join(a.out, "ckpt.pt"), os.path.join(a.out, "train_log.csv")
    if a.resume and os.path.exists(ckpt_path):
        ck = torch.load(ckpt_path, map_location="cpu", weights_only=False)
        model.load_state_dict(ck["model"]); opt.load_state_dict(ck["opt"])
        step, t_prev = ck["step"], ck["elapsed"]; rng.bit_generator.state = ck["rng"]
        print(f"resumed at step {step}", flush=True)
    elif not a.bench:
        with open(log_path, "w", newline="") as f:
            csv.writer(f).writerow(["step", "tokens", "elapsed_s", "lr", "train_loss", "train_bpb", "heldout_loss", "heldout_bpb"])
    eval_xy = heldout_windows(held, a.ctx, a.eval_windows)

    def save():
        torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "step": step, "elapsed": elapsed,
                    "rng": rng.bit_generator.state, "args": vars(a)}, ckpt_path + ".tmp")
        os.replace(ckpt_path + ".tmp", ckpt_path)
        torch.save(model.official_state_dict(torch.float32), os.path.join(a.out, "demo.pth.tmp"))
        os.replace(os.path.join(a.out, "demo.pth.tmp"), os.path.join(a.out, "demo.pth"))

    t0 = time.time() - t_prev
    run_loss, run_n = 0.0, 0
    elapsed = t_prev
    while step < a.steps:
        lr = lr_at(step, a, elapsed)
        for g in opt.param_groups:
            g["lr"] = lr * g["lr_scale"]
        starts = rng.integers(0, len(train) - a.ctx - 1, size=a.batch)
        x = torch.from_numpy(np.stack([train[s:s + a.ctx] for s in starts]))
        y = torch.from_numpy(np.stack([train[s + 1:s + a.ctx + 1] for s in starts]))
        logits = model(x)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), a.clip)
        opt.step()
        step += 1
        run_loss += loss.item(); run_n += 1
        elapsed = time.time() - t0
        if a.bench:
            print(f"step {step} loss {loss.item():.4f} {elapsed / step:.2f} s/step", flush=True)
            if step >= a.bench:
                return
            continue
        last = step >= a.steps or elapsed > a.time_budget
        if step % a.log_every == 0 or last:
            hl = evaluate(model, eval_xy) if (step % a.eval_every == 0 or last) else None
            tl = run_loss / run_n
            with open(log_path, "a", newline="") as f:
                csv.writer(f).writerow([step, step * a.batch * a.ctx, f"{elapsed:.1f}", f"{lr:.3e}", f"{tl:.4f}",
                                        f"{tl / math.log(2):.4f}", "" if hl is None else f"{hl:.4f}",
                                        "" if hl is None else f"{hl / math.log(2):.4f}"])
            print(f"step {step} tok {step * a.batch * a.ctx} t {elapsed:.0f}s lr {lr:.2e} train {tl:.4f}"
                  + ("" if hl is None else f" heldout {hl:.4f} ({hl / math.log(2):.3f} bpb)"), flush=True)
            run_loss, run_n = 0.0, 0
        if step % a.ckpt_every == 0 or last:
            save()
        if last:
            break
    print(f"done: {step} steps in {elapsed:.0f}s", flush=True)


if __name__ == "__main__":
    main()
