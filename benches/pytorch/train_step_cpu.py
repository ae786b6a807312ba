#!/usr/bin/env python3
"""The two training steps of benches/benches/demo_step.rs and train_step.rs, in PyTorch on the CPU.

* demo: the README's main command, division mod 23, MLP 100 -> 128 -> 128 -> 23 (ReLU), all
  253 training rows every step, Adam lr 1e-2, eps 1e-8. Timed plain (`demo_step`) and with
  the demo's logging (`demo_step_log_every_10`): every tenth step reads the loss back and
  evaluates both splits (loss and accuracy, no autograd), as the harness does.
* paper: App. D Table 2, division mod 97, MLP 396 -> 512 x5 -> 97, batch 512 (the same rows
  every step, as the Rust bench), Adam lr 1e-3, eps 1e-8 (`paper_step`).

Inputs are the tokens a, op, b, = one-hot over p + 2 symbols, as slingshot's MLP reads them.
Each case runs warm-up steps, then `--rounds` timed blocks; the block's time per step is
reported, median and spread over blocks.

    python3 benches/pytorch/train_step_cpu.py                    # both cases, 2 threads
    python3 benches/pytorch/train_step_cpu.py --only demo --json out.json
    python3 benches/pytorch/train_step_cpu.py --threads 1

It installs nothing: without torch it prints how to get it and exits 0 (docs/performance.md).
"""

import argparse
import json
import platform
import statistics
import sys
import time


def modular_division(torch, p, train_fraction, seed):
    """The task's one-hot rows and labels, split at train_fraction (a seeded shuffle)."""
    pairs = [(a, b) for a in range(p) for b in range(1, p)]
    labels = [(a * pow(b, p - 2, p)) % p for a, b in pairs]
    vocab = p + 2
    x = torch.zeros(len(pairs), 4 * vocab)
    for i, (a, b) in enumerate(pairs):
        for slot, token in enumerate((a, p, b, p + 1)):
            x[i, slot * vocab + token] = 1.0
    y = torch.tensor(labels)
    order = torch.randperm(len(pairs), generator=torch.Generator().manual_seed(seed))
    n_train = round(len(pairs) * train_fraction)
    return (x[order[:n_train]], y[order[:n_train]]), (x[order[n_train:]], y[order[n_train:]])


def mlp(nn, d_in, width, depth, classes):
    layers, d = [], d_in
    for _ in range(depth):
        layers += [nn.Linear(d, width), nn.ReLU()]
        d = width
    return nn.Sequential(*layers, nn.Linear(d, classes))


def blocks(step, warmup, steps, rounds):
    """Milliseconds per step of `rounds` blocks of `steps` calls, after `warmup` calls."""
    for i in range(warmup):
        step(i)
    out = []
    for r in range(rounds):
        start = time.perf_counter()
        for i in range(steps):
            step(r * steps + i)
        out.append((time.perf_counter() - start) * 1e3 / steps)
    return out


def demo(torch, nn, args):
    torch.manual_seed(0)
    train, test = modular_division(torch, 23, 0.5, 0)
    model = mlp(nn, train[0].shape[1], 128, 2, 23)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2, eps=1e-8)
    ce = nn.CrossEntropyLoss()

    def step(i, log_every=None):
        opt.zero_grad(set_to_none=True)
        loss = ce(model(train[0]), train[1])
        loss.backward()
        opt.step()
        if log_every and (i + 1) % log_every == 0:
            with torch.no_grad():
                row = [loss.item()]
                for x, y in (train, test):
                    logits = model(x)
                    row += [ce(logits, y).item(), (logits.argmax(1) == y).float().mean().item()]

    plain = blocks(step, args.warmup, args.demo_steps, args.rounds)
    logged = blocks(lambda i: step(i, 10), args.warmup, args.demo_steps, args.rounds)
    return {"demo_step": plain, "demo_step_log_every_10": logged}


def paper(torch, nn, args):
    torch.manual_seed(0)
    train, _ = modular_division(torch, 97, 0.5, 0)
    x, y = train[0][:512], train[1][:512]
    model = mlp(nn, x.shape[1], 512, 5, 97)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-8)
    ce = nn.CrossEntropyLoss()

    def step(_):
        opt.zero_grad(set_to_none=True)
        ce(model(x), y).backward()
        opt.step()

    return {"paper_step": blocks(step, 5, args.paper_steps, args.rounds)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (default 2)")
    ap.add_argument("--only", choices=["demo", "paper"], help="one case (default: both)")
    ap.add_argument("--rounds", type=int, default=5, help="timed blocks per case")
    ap.add_argument("--warmup", type=int, default=200, help="untimed demo steps first")
    ap.add_argument("--demo-steps", type=int, default=1000, help="demo steps per block")
    ap.add_argument("--paper-steps", type=int, default=20, help="paper steps per block")
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args()
    for name in ("threads", "rounds", "demo_steps", "paper_steps"):
        if getattr(args, name) < 1:
            sys.exit(f"--{name.replace('_', '-')} must be at least 1")
    try:
        import torch
        from torch import nn
    except ImportError:
        print("torch is not installed; this script installs nothing. Install the CPU build with")
        print("  pip install torch   (or: pip install torch --index-url https://download.pytorch.org/whl/cpu)")
        return 0
    torch.set_num_threads(args.threads)
    results = {}
    if args.only in (None, "demo"):
        results.update(demo(torch, nn, args))
    if args.only in (None, "paper"):
        results.update(paper(torch, nn, args))
    blas = "MKL" if torch.backends.mkl.is_available() else "other (see torch.__config__.show())"
    print(f"PyTorch {torch.__version__}, {torch.get_num_threads()} threads, BLAS {blas}, "
          f"{platform.processor() or platform.machine()}")
    summary = {}
    for name, times in results.items():
        med = statistics.median(times)
        summary[name] = {"median_ms": med, "min_ms": min(times), "max_ms": max(times)}
        print(f"{name:<24} {med:8.3f} ms per step (blocks: {min(times):.3f} .. {max(times):.3f})")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"torch": torch.__version__, "threads": torch.get_num_threads(),
                       "blas": blas, "results": summary}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
