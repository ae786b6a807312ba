#!/usr/bin/env python3
"""One full-batch CIFAR-10 epoch in PyTorch: the networks of the cifar-* binaries, timed.

The reference for the epoch time of `cifar-architectures --preset paper --backend cuda`
(docs/results.md, issue 6). Each network is built as slingshot builds it (App. D.2): the 6-layer
MLP of width 512, VGG11 with one linear classifier (with and without BatchNorm), ResNet18 for
32x32 images (3x3 stride-1 stem, no max-pool) and the ViT (patch 4, width 256, 12 blocks of 8
heads, mean-pooled features). An epoch is one Adam step (lr 1e-3, betas 0.9/0.95, eps 1e-8)
on the gradient of the mean cross-entropy over N images, accumulated over chunks of
--chunk images, as the harness's `--grad-chunk` does; the ViT takes steps of batch 2048
instead (25 per epoch of 50,000), as in App. D Table 3. Random images stand in for CIFAR-10:
the timing does not depend on the pixels.

    python3 benches/pytorch/cifar_epoch.py                      # every network, N = 50000
    python3 benches/pytorch/cifar_epoch.py --models vgg11 --n 50000 --chunk 2500
    python3 benches/pytorch/cifar_epoch.py --json $OUT/torch-cifar.json

Exits 0 with a message where torch or a CUDA device is missing.
"""

import argparse
import json
import statistics
import sys
import time

MODELS = ["mlp", "vgg11", "vgg11-bn", "resnet18", "vit"]


def build(name, nn, torch):
    if name == "mlp":
        layers, d = [nn.Flatten()], 3072
        for _ in range(5):
            layers += [nn.Linear(d, 512), nn.ReLU()]
            d = 512
        return nn.Sequential(*layers, nn.Linear(512, 10))
    if name.startswith("vgg11"):
        bn = name.endswith("bn")
        layers, c_in = [], 3
        for m in [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"]:
            if m == "M":
                layers.append(nn.MaxPool2d(2))
                continue
            layers.append(nn.Conv2d(c_in, m, 3, padding=1))
            if bn:
                layers.append(nn.BatchNorm2d(m))
            layers.append(nn.ReLU())
            c_in = m
        return nn.Sequential(*layers, nn.Flatten(), nn.Linear(512, 10))
    if name == "resnet18":

        class Block(nn.Module):
            def __init__(self, c_in, c_out, stride):
                super().__init__()
                self.a = nn.Sequential(
                    nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(),
                    nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False), nn.BatchNorm2d(c_out),
                )
                self.skip = nn.Identity()
                if stride != 1 or c_in != c_out:
                    self.skip = nn.Sequential(
                        nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out)
                    )

            def forward(self, x):
                return torch.relu(self.a(x) + self.skip(x))

        blocks, c_in = [], 64
        for stage, c in enumerate([64, 128, 256, 512]):
            for b in range(2):
                blocks.append(Block(c_in, c, 2 if stage > 0 and b == 0 else 1))
                c_in = c
        return nn.Sequential(
            nn.Conv2d(3, 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64), nn.ReLU(),
            *blocks, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(512, 10),
        )
    if name == "vit":

        class Vit(nn.Module):
            def __init__(self, d=256, heads=8, layers=12, patch=4):
                super().__init__()
                self.patches = nn.Conv2d(3, d, patch, patch)
                self.positions = nn.Parameter(torch.randn(1, (32 // patch) ** 2, d) * 0.02)
                layer = nn.TransformerEncoderLayer(
                    d, heads, 4 * d, dropout=0.0, activation="gelu", batch_first=True, norm_first=True
                )
                self.blocks = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
                self.norm = nn.LayerNorm(d)
                self.head = nn.Linear(d, 10)

            def forward(self, x):
                x = self.patches(x).flatten(2).transpose(1, 2) + self.positions
                return self.head(self.norm(self.blocks(x)).mean(1))

        return Vit()
    raise ValueError(name)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=MODELS, choices=MODELS)
    parser.add_argument("--n", type=int, default=50_000, help="training images")
    parser.add_argument("--chunk", type=int, default=2_500, help="images per forward/backward")
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs after one warm-up")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()
    try:
        import torch
        from torch import nn
    except ImportError:
        print("torch is not installed: nothing to measure")
        return 0
    if not torch.cuda.is_available():
        print("no CUDA device: nothing to measure")
        return 0
    device = torch.device("cuda")
    torch.manual_seed(42)
    x = torch.rand(args.n, 3, 32, 32, device=device)
    y = torch.randint(0, 10, (args.n,), device=device)
    results = []
    for name in args.models:
        model = build(name, nn, torch).to(device)
        opt = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.9, 0.95), eps=1e-8)
        batch = 2048 if name == "vit" else args.n
        chunk = min(args.chunk, batch)

        def epoch():
            for start in range(0, args.n, batch):
                xb, yb = x[start : start + batch], y[start : start + batch]
                rows = xb.shape[0]
                opt.zero_grad(set_to_none=True)
                for c in range(0, rows, chunk):
                    xc, yc = xb[c : c + chunk], yb[c : c + chunk]
                    loss = nn.functional.cross_entropy(model(xc), yc) * (xc.shape[0] / rows)
                    loss.backward()
                opt.step()

        epoch()
        torch.cuda.synchronize()
        times = []
        for _ in range(args.epochs):
            t0 = time.perf_counter()
            epoch()
            torch.cuda.synchronize()
            times.append(time.perf_counter() - t0)
        params = sum(p.numel() for p in model.parameters())
        row = {
            "model": name,
            "n": args.n,
            "chunk": chunk,
            "batch": batch,
            "params": params,
            "epoch_seconds_median": statistics.median(times),
            "epoch_seconds": times,
            "device": torch.cuda.get_device_name(0),
            "torch": torch.__version__,
        }
        results.append(row)
        print(f"{name:<10} {params:>10} params  epoch {row['epoch_seconds_median']:.3f} s (median of {len(times)})")
        del model, opt
        torch.cuda.empty_cache()
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
