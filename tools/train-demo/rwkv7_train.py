"""Our own RWKV-7 (x070) training model, GPT/parallel form, pure PyTorch CPU.

The math is spec/rwkv7-reference.md §1-§2 (the official `rwkv` 0.8.32 math) and
the parameters use the official .pth names/shapes (§3.1), so `state_dict()` of
`RWKV7` (see `official_state_dict`) loads in the official `rwkv` package.

Everything except the WKV recurrence is batched over (B, T). The WKV recurrence
is a per-timestep loop over T with a hand-written backward pass (`WKV7`), which
stores all states S_t of the forward pass (fp32) and walks them back.

Decay: exp(-0.606531 * sigmoid(w)) exactly as the official inference code (it is
mathematically equal to the training kernels' exp(-exp(-softplus(-w) - 0.5))).
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

HEAD_SIZE = 64
DECAY_SCALE = 0.606531  # as in the rwkv pip package


def lora_ranks(C):
    """Rank formula of the released World v3 / G1 models (spec §4)."""
    r = lambda x: max(32, int(round(x / 32) * 32))
    Dw = Da = r(1.8 * C ** 0.5)
    Dv = r(1.3 * C ** 0.5)
    Dg = 128 if C == 1024 else r(0.6 * C ** 0.8)
    return Dw, Da, Dv, Dg


class WKV7(torch.autograd.Function):
    """S_t = S_{t-1} diag(w_t) + (S_{t-1} a_t) b_t^T + v_t k_t^T ;  y_t = S_t r_t
    (per batch b, head h; S is [N(value), N(key)]). Inputs [B,T,H,N], S0 = 0."""

    @staticmethod
    def forward(ctx, r, w, k, v, a, b):
        B, T, H, N = r.shape
        # time-major contiguous copies so that every [t] slice is contiguous
        r, w, k, v, a, b = [x.transpose(0, 1).contiguous() for x in (r, w, k, v, a, b)]
        states = r.new_empty(T, B, H, N, N)
        y = r.new_empty(T, B, H, N)
        S = r.new_zeros(B, H, N, N)
        for t in range(T):
            St = states[t]
            sa = torch.matmul(S, a[t].unsqueeze(-1))                               # [B,H,N,1]
            torch.mul(S, w[t].unsqueeze(-2), out=St)
            St.addcmul_(sa, b[t].unsqueeze(-2))
            St.addcmul_(v[t].unsqueeze(-1), k[t].unsqueeze(-2))
            torch.matmul(St, r[t].unsqueeze(-1), out=y[t].unsqueeze(-1))
            S = St
        ctx.save_for_backward(r, w, k, v, a, b, states)
        return y.transpose(0, 1)

    @staticmethod
    def backward(ctx, dy):
        r, w, k, v, a, b, states = ctx.saved_tensors
        T, B, H, N = r.shape
        dy = dy.transpose(0, 1).contiguous()
        dr, dw, dk, dv, da, db = [torch.empty_like(r) for _ in range(6)]
        dS = r.new_zeros(B, H, N, N)
        zero = r.new_zeros(B, H, N, N)
        tmp = r.new_empty(B, H, N, N)
        for t in range(T - 1, -1, -1):
            St = states[t]
            Sp = states[t - 1] if t > 0 else zero
            dS.addcmul_(dy[t].unsqueeze(-1), r[t].unsqueeze(-2))                  # dS_ij += dy_i r_j
            torch.matmul(dy[t].unsqueeze(-2), St, out=dr[t].unsqueeze(-2))        # sum_i dy_i S_ij
            torch.matmul(dS, k[t].unsqueeze(-1), out=dv[t].unsqueeze(-1))         # sum_j dS_ij k_j
            torch.matmul(v[t].unsqueeze(-2), dS, out=dk[t].unsqueeze(-2))         # sum_i v_i dS_ij
            sa = torch.matmul(Sp, a[t].unsqueeze(-1))                             # [B,H,N,1]
            dsa = torch.matmul(dS, b[t].unsqueeze(-1))                            # [B,H,N,1]
            torch.matmul(sa.transpose(-1, -2), dS, out=db[t].unsqueeze(-2))       # sum_i sa_i dS_ij
            torch.mul(Sp, dS, out=tmp); torch.sum(tmp, -2, out=dw[t])             # sum_i S_ij dS_ij
            torch.matmul(dsa.transpose(-1, -2), Sp, out=da[t].unsqueeze(-2))      # sum_i dsa_i S_ij
            dS.mul_(w[t].unsqueeze(-2)).addcmul_(dsa, a[t].unsqueeze(-2))
        return tuple(x.transpose(0, 1) for x in (dr, dw, dk, dv, da, db))


def wkv7_reference(r, w, k, v, a, b):
    """Plain autograd version (for testing WKV7)."""
    B, T, H, N = r.shape
    S = r.new_zeros(B, H, N, N)
    ys = []
    for t in range(T):
        sa = torch.matmul(S, a[:, t, :, :, None])
        S = S * w[:, t, :, None, :] + sa * b[:, t, :, None, :] + v[:, t, :, :, None] * k[:, t, :, None, :]
        ys.append(torch.matmul(S, r[:, t, :, :, None]).squeeze(-1))
    return torch.stack(ys, 1)


def ortho(rows, cols, gain):
    m = torch.empty(rows, cols)
    nn.init.orthogonal_(m, gain=gain)
    return m


class TimeMix(nn.Module):
    def __init__(self, C, layer_id, n_layer, ranks):
        super().__init__()
        H, N = C // HEAD_SIZE, HEAD_SIZE
        self.C, self.H, self.N, self.layer_id = C, H, N, layer_id
        Dw, Da, Dv, Dg = ranks
        # official training init (RWKV-LM train_temp/src/model.py, RWKV_Tmix_x070)
        r01 = layer_id / (n_layer - 1) if n_layer > 1 else 0.0
        r1a0 = 1.0 - layer_id / n_layer
        ddd = (torch.arange(C) / C).reshape(1, 1, C)
        n = torch.arange(C, dtype=torch.float32)
        linear = n / (C - 1) - 0.5
        zigzag = ((n % N) - (N - 1) / 2) / ((N - 1) / 2)
        zigzag = zigzag * zigzag.abs()
        www = -6 + 6 * (n / (C - 1)) ** (1 + 1 * r01 ** 0.3)
        P = nn.Parameter
        self.x_r = P(1.0 - ddd ** (0.2 * r1a0))
        self.x_w = P(1.0 - ddd ** (0.9 * r1a0))
        self.x_k = P(1.0 - ddd ** (0.7 * r1a0))
        self.x_v = P(1.0 - ddd ** (0.7 * r1a0))
        self.x_a = P(1.0 - ddd ** (0.9 * r1a0))
        self.x_g = P(1.0 - ddd ** (0.2 * r1a0))
        self.w0 = P((www + 0.5 + zigzag * 2.5).reshape(1, 1, C))
        self.r_k = P(torch.zeros(H, N) - 0.04)
        self.w1 = P(torch.zeros(C, Dw))
        self.w2 = P(ortho(Dw, C, 0.1))
        self.a1 = P(torch.zeros(C, Da))
        self.a2 = P(ortho(Da, C, 0.1))
        self.a0 = P((torch.zeros(C) - 0.19 + zigzag * 0.3 + linear * 0.4).reshape(1, 1, C))
        self.g1 = P(torch.zeros(C, Dg))
        self.g2 = P(ortho(Dg, C, 0.1))
        self.v2 = P(ortho(Dv, C, 0.1))
        self.v1 = P(torch.zeros(C, Dv))
        self.v0 = P((torch.zeros(C) + 0.73 - linear * 0.4).reshape(1, 1, C))
        self.k_k = P((torch.zeros(C) + 0.71 - linear * 0.1).reshape(1, 1, C))
        self.k_a = P(torch.zeros(1, 1, C) + 1.02)
        self.receptance = nn.Linear(C, C, bias=False)
        self.key = nn.Linear(C, C, bias=False)
        self.value = nn.Linear(C, C, bias=False)
        self.output = nn.Linear(C, C, bias=False)
        self.ln_x = nn.GroupNorm(H, C, eps=64e-5)
        with torch.no_grad():
            s = C ** -0.5
            self.receptance.weight.uniform_(-0.5 * s, 0.5 * s)
            self.key.weight.uniform_(-0.05 * s, 0.05 * s)
            self.value.weight.uniform_(-0.5 * s, 0.5 * s)
            self.output.weight.zero_()
            self.ln_x.weight.fill_(((1 + layer_id) / n_layer) ** 0.7)
            self.ln_x.bias.zero_()

    def forward(self, x, v_first):
        B, T, C = x.shape
        H, N = self.H, self.N
        xx = F.pad(x, (0, 0, 1, -1)) - x            # token shift: x_{t-1} - x_t (zeros before t=0)
        xr, xw, xk = x + xx * self.x_r, x + xx * self.x_w, x + xx * self.x_k
        xv, xa, xg = x + xx * self.x_v, x + xx * self.x_a, x + xx * self.x_g
        r = self.receptance(xr)
        w = self.w0 + torch.tanh(xw @ self.w1) @ self.w2
        k = self.key(xk)
        v = self.value(xv)
        if self.layer_id == 0:
            v_first = v
        else:
            v = v + (v_first - v) * torch.sigmoid(self.v0 + (xv @ self.v1) @ self.v2)
        a = torch.sigmoid(self.a0 + (xa @ self.a1) @ self.a2)
        g = torch.sigmoid(xg @ self.g1) @ self.g2
        kk = F.normalize((k * self.k_k).view(B, T, H, N), dim=-1, p=2.0)
        k = k * (1 + (a - 1) * self.k_a)
        decay = torch.exp(-DECAY_SCALE * torch.sigmoid(w))
        rh, kh, vh = r.view(B, T, H, N), k.view(B, T, H, N), v.view(B, T, H, N)
        y = WKV7.apply(rh, decay.view(B, T, H, N), kh, vh, -kk, kk * a.view(B, T, H, N))
        y = self.ln_x(y.reshape(B * T, C)).view(B, T, C)
        y = y + ((rh * kh * self.r_k).sum(-1, keepdim=True) * vh).view(B, T, C)
        return self.output(y * g), v_first


class ChannelMix(nn.Module):
    def __init__(self, C, layer_id, n_layer):
        super().__init__()
        r1a0 = 1.0 - layer_id / n_layer
        ddd = (torch.arange(C) / C).reshape(1, 1, C)
        self.x_k = nn.Parameter(1.0 - ddd ** (r1a0 ** 4))
        self.key = nn.Linear(C, 4 * C, bias=False)
        self.value = nn.Linear(4 * C, C, bias=False)
        with torch.no_grad():
            self.key.weight.uniform_(-0.5 * C ** -0.5, 0.5 * C ** -0.5)
            self.value.weight.zero_()

    def forward(self, x):
        xx = F.pad(x, (0, 0, 1, -1)) - x
        k = torch.relu(self.key(x + xx * self.x_k)) ** 2
        return self.value(k)


class Block(nn.Module):
    def __init__(self, C, layer_id, n_layer, ranks):
        super().__init__()
        self.layer_id = layer_id
        if layer_id == 0:
            self.ln0 = nn.LayerNorm(C)
        self.ln1 = nn.LayerNorm(C)
        self.ln2 = nn.LayerNorm(C)
        self.att = TimeMix(C, layer_id, n_layer, ranks)
        self.ffn = ChannelMix(C, layer_id, n_layer)

    def forward(self, x, v_first):
        if self.layer_id == 0:
            x = self.ln0(x)
        dx, v_first = self.att(self.ln1(x), v_first)
        x = x + dx
        x = x + self.ffn(self.ln2(x))
        return x, v_first


class RWKV7(nn.Module):
    def __init__(self, n_layer=4, n_embd=192, vocab=257, seed=0):
        super().__init__()
        torch.manual_seed(seed)
        C = n_embd
        assert C % HEAD_SIZE == 0
        self.n_layer, self.n_embd, self.vocab = n_layer, C, vocab
        self.ranks = lora_ranks(C)
        self.emb = nn.Embedding(vocab, C)
        self.blocks = nn.ModuleList([Block(C, i, n_layer, self.ranks) for i in range(n_layer)])
        self.ln_out = nn.LayerNorm(C)
        self.head = nn.Linear(C, vocab, bias=False)
        with torch.no_grad():  # generate_init_weight
            self.emb.weight.uniform_(-1e-4, 1e-4)
            gain = 0.5 * math.sqrt(vocab / C) if vocab > C else 0.5
            nn.init.orthogonal_(self.head.weight, gain=gain)

    def forward(self, idx):
        x = self.emb(idx)
        v_first = None
        for blk in self.blocks:
            x, v_first = blk(x, v_first)
        return self.head(self.ln_out(x))

    def official_state_dict(self, dtype=torch.float32):
        """All keys of spec §3.1 in the official order (incl. layer-0 v0/v1/v2)."""
        sd = self.state_dict()
        order = ["emb.weight"]
        att = ["x_r", "x_w", "x_k", "x_v", "x_a", "x_g", "w0", "r_k", "w1", "w2", "a1", "a2", "a0", "g1", "g2",
               "v2", "v1", "v0", "k_k", "k_a", "receptance.weight", "key.weight", "value.weight", "output.weight",
               "ln_x.weight", "ln_x.bias"]
        for l in range(self.n_layer):
            b = f"blocks.{l}."
            if l == 0:
                order += [b + "ln0.weight", b + "ln0.bias"]
            order += [b + "ln1.weight", b + "ln1.bias", b + "ln2.weight", b + "ln2.bias"]
            order += [b + "att." + n for n in att]
            order += [b + "ffn.x_k", b + "ffn.key.weight", b + "ffn.value.weight"]
        order += ["ln_out.weight", "ln_out.bias", "head.weight"]
        assert sorted(order) == sorted(sd.keys()), set(order) ^ set(sd.keys())
        return {k: sd[k].detach().to(dtype).contiguous().clone() for k in order}
