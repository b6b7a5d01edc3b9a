"""PyTorch side of `npm run bench`: the same models as bench/encoder.ts / bench/run.ts, idiomatic PyTorch
(nn.Module, torch.optim.AdamW, loss.backward()), 2 threads. Reads one JSON case from argv[1], prints one JSON line;
with "serve": true it prints {"ready"} and then runs one step per "step" line on stdin, answering {"ms"} each time."""
import json, math, sys, time
import torch
import torch.nn as nn
import torch.nn.functional as F

torch.set_num_threads(2)
torch.manual_seed(0)


class LoRALinear(nn.Module):
    def __init__(self, inf, outf, rank=0, alpha=1):
        super().__init__()
        self.base = nn.Linear(inf, outf)
        self.rank = rank
        if rank:
            self.lora_A = nn.Parameter(torch.randn(rank, inf) / math.sqrt(inf))
            self.lora_B = nn.Parameter(torch.zeros(outf, rank))
            self.scale = alpha / rank

    def forward(self, x):
        y = self.base(x)
        if self.rank:
            # scale on the rank-r intermediate, as bench/encoder.ts does (same product, less elementwise work)
            y = y + ((x @ self.lora_A.t()) * self.scale) @ self.lora_B.t()
        return y


class Layer(nn.Module):
    def __init__(self, c):
        super().__init__()
        h, r, a = c["hidden"], c.get("lora_rank", 0), c.get("lora_alpha", 1)
        self.heads = c["heads"]
        self.q, self.k, self.v, self.o = (LoRALinear(h, h, r, a) for _ in range(4))
        self.ln1, self.ln2 = nn.LayerNorm(h, eps=1e-12), nn.LayerNorm(h, eps=1e-12)
        self.ff1, self.ff2 = nn.Linear(h, c["ffn"]), nn.Linear(c["ffn"], h)
        self.drop = nn.Dropout(c["dropout"])

    def forward(self, x, mask_add):
        b, s, h = x.shape
        dh = h // self.heads
        split = lambda t: t.view(b, s, self.heads, dh).transpose(1, 2)
        q, k, v = split(self.q(x)), split(self.k(x)), split(self.v(x))
        p = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(dh) + mask_add, dim=-1)
        ctx = (p @ v).transpose(1, 2).reshape(b, s, h)
        x = self.ln1(x + self.drop(self.o(ctx)))
        return self.ln2(x + self.drop(self.ff2(F.gelu(self.ff1(x)))))


class Encoder(nn.Module):
    def __init__(self, c):
        super().__init__()
        h = c["hidden"]
        self.word = nn.Embedding(c["vocab"], h)
        self.pos = nn.Embedding(c["seq"], h)
        self.ln = nn.LayerNorm(h, eps=1e-12)
        self.drop = nn.Dropout(c["dropout"])
        self.layers = nn.ModuleList(Layer(c) for _ in range(c["layers"]))
        self.classifier = nn.Linear(h, c["classes"])

    def forward(self, ids, mask):
        x = self.drop(self.ln(self.word(ids) + self.pos(torch.arange(ids.shape[1]))))
        mask_add = (mask[:, None, None, :] - 1) * 10000
        for l in self.layers:
            x = l(x, mask_add)
        m = mask[:, :, None]
        return self.classifier((x * m).sum(1) / m.sum(1))


def main():
    c = json.loads(sys.argv[1])
    if c["model"] == "mlp":
        model = nn.Sequential(nn.Linear(784, 1024), nn.ReLU(), nn.Linear(1024, 1024), nn.ReLU(), nn.Linear(1024, 10))
        inputs = (torch.randn(c["batch"], 784),)
    else:
        model = Encoder(c)
        inputs = (torch.randint(0, c["vocab"], (c["batch"], c["seq"])), torch.ones(c["batch"], c["seq"]))
        if c.get("lora_rank"):
            for n, p in model.named_parameters():
                p.requires_grad = "lora_" in n or n.startswith("classifier.")
    labels = torch.randint(0, 10 if c["model"] == "mlp" else c["classes"], (c["batch"],))
    model.train()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    def step():
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(*inputs), labels)
        loss.backward()
        opt.step()
        return (time.perf_counter() - t0) * 1000

    if c.get("serve"):
        # Interleaved mode: the Node side asks for one step at a time, so both frameworks see the same machine load.
        print(json.dumps({"ready": True, "torch": torch.__version__}), flush=True)
        for line in sys.stdin:
            if line.strip() != "step":
                break
            print(json.dumps({"ms": step()}), flush=True)
        return
    times = []
    for i in range(c["warmup"] + c["steps"]):
        ms = step()
        if i >= c["warmup"]:
            times.append(ms)
    times.sort()
    print(json.dumps({"median_ms": times[len(times) // 2], "times_ms": times, "torch": torch.__version__, "blas": torch.__config__.show().count("openblas") > 0}))


main()
