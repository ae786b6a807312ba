#!/usr/bin/env python3
"""PyTorch's F.cross_entropy, forward + backward, on the shapes of benches/benches/loss.rs.

The reference the fused CubeCL kernel is compared with (docs/performance.md). Each iteration
is the forward (mean reduction) and the backward of the loss with respect to the logits, timed
with CUDA events around a batch of iterations after a warm-up; the median of the batches is
reported, with the effective bandwidth at 12 bytes per f32 logit (each logit read twice and
its gradient written once: three times the element size; the same convention as the Rust
benches and docs/performance.md).

    python3 benches/pytorch/cross_entropy.py                 # all shapes, f32
    python3 benches/pytorch/cross_entropy.py --shapes 4656x97 --graph
    python3 benches/pytorch/cross_entropy.py --json $OUT/torch.json

Exits 0 with a message where torch or a CUDA device is missing, so that it can sit in a
script that also runs on machines without a GPU.
"""

import argparse
import json
import statistics
import sys

DEFAULT_SHAPES = ["4656x97", "8192x32768", "16384x131072"]


def parse_shape(text):
    n, k = text.lower().split("x")
    return int(n), int(k)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", nargs="+", default=DEFAULT_SHAPES, help="NxK shapes")
    parser.add_argument("--dtype", choices=["float32", "float64", "bfloat16"], default="float32")
    parser.add_argument("--warmup", type=int, default=10, help="warm-up iterations")
    parser.add_argument("--iters", type=int, default=20, help="iterations per timed batch")
    parser.add_argument("--batches", type=int, default=10, help="timed batches")
    parser.add_argument(
        "--graph", action="store_true", help="also time the step captured in a CUDA graph"
    )
    parser.add_argument("--json", help="write the results to this file as JSON")
    args = parser.parse_args()

    try:
        import torch
        import torch.nn.functional as F
    except ImportError:
        print("skipped: torch is not installed")
        return 0
    if not torch.cuda.is_available():
        print("skipped: torch sees no CUDA device")
        return 0

    dtype = getattr(torch, args.dtype)
    device = torch.device("cuda")
    print(f"torch {torch.__version__}, {torch.cuda.get_device_name(device)}, {args.dtype}")
    results = []
    for text in args.shapes:
        n, k = parse_shape(text)
        try:
            result = bench_shape(torch, F, n, k, dtype, device, args)
        except torch.cuda.OutOfMemoryError as e:
            print(f"{n}x{k}: out of memory ({e})")
            results.append({"shape": [n, k], "error": "out of memory"})
            continue
        finally:
            torch.cuda.empty_cache()
        results.append(result)
        line = f"{n}x{k}: eager {result['eager_ms'] * 1e3:.1f} us"
        line += f" ({result['eager_gbps']:.0f} GB/s effective)"
        if "graph_ms" in result:
            line += f", CUDA graph {result['graph_ms'] * 1e3:.1f} us"
        print(line)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {
                    "torch": torch.__version__,
                    "device": torch.cuda.get_device_name(device),
                    "dtype": args.dtype,
                    "bytes_per_logit": 3 * torch.finfo(dtype).bits // 8,
                    "results": results,
                },
                f,
                indent=2,
            )
    return 0


def bench_shape(torch, F, n, k, dtype, device, args):
    gen = torch.Generator(device=device).manual_seed(0)
    logits = (torch.rand(n, k, device=device, dtype=dtype, generator=gen) * 16 - 8).requires_grad_()
    targets = (torch.arange(n, device=device) * 31) % k

    def step():
        logits.grad = None
        loss = F.cross_entropy(logits, targets)
        loss.backward()

    eager = time_batches(torch, step, args)
    bytes_per_logit = 3 * torch.finfo(dtype).bits // 8
    gbps = bytes_per_logit * n * k / (eager / 1e3) / 1e9
    result = {"shape": [n, k], "eager_ms": eager, "eager_gbps": gbps}
    if args.graph:
        # The gradient buffer must persist across replays: accumulate into a fixed one.
        static = logits.detach().clone().requires_grad_()
        static.grad = torch.zeros_like(static)
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            for _ in range(3):
                F.cross_entropy(static, targets).backward()
        torch.cuda.current_stream().wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            F.cross_entropy(static, targets).backward()
        result["graph_ms"] = time_batches(torch, graph.replay, args)
    return result


def time_batches(torch, fn, args):
    """Median milliseconds per call over `batches` batches of `iters` calls each."""
    for _ in range(args.warmup):
        fn()
    torch.cuda.synchronize()
    per_call = []
    for _ in range(args.batches):
        start = torch.cuda.Event(enable_timing=True)
        end = torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(args.iters):
            fn()
        end.record()
        end.synchronize()
        per_call.append(start.elapsed_time(end) / args.iters)
    return statistics.median(per_call)


if __name__ == "__main__":
    sys.exit(main())
