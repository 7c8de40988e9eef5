"""The CPU's float32 matrix product through MKL (what `nn.Linear` uses) against oneDNN with a prepacked weight.

    .venv/bin/python -m bench.cpu_gemm [--rows 1,5,64,512] [--repeats 50]

Why: on this project's AVX2-only AMD EPYC, MKL's sgemm runs far below the cores' peak for the few rows a
decode step has (a batch of 5 rows took 3.3 ms where oneDNN took 0.34 ms, on a 3072x1024 weight, the
decoder's MLP shape), while oneDNN's kernels choose their code by the CPU's features, not its vendor. The
two run alternately in one process, so machine drift hits both; the ratio is what to compare.
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

OUT_FEATURES, IN_FEATURES = 3072, 1024  # Qwen3-ASR-0.6B decoder: gate/up projection


def _ms_per_call(product, rows: int, repeats: int) -> float:
    x = torch.randn(rows, IN_FEATURES)
    product(x)
    started = time.perf_counter()
    for _ in range(repeats):
        product(x)
    return (time.perf_counter() - started) / repeats * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default="1,5,64,512", help="comma-separated row counts (decode batch sizes)")
    parser.add_argument("--repeats", type=int, default=50)
    args = parser.parse_args()

    weight = torch.randn(OUT_FEATURES, IN_FEATURES)
    packed = torch.ops.mkldnn._reorder_linear_weight(weight, None)
    with torch.inference_mode():
        print(f"| rows | MKL (ms) | oneDNN packed (ms) | MKL / oneDNN |   ({torch.get_num_threads()} threads)")
        print("|---|---|---|---|")
        for rows in (int(r) for r in args.rows.split(",")):
            mkl = _ms_per_call(lambda x: F.linear(x, weight), rows, args.repeats)
            onednn = _ms_per_call(
                lambda x: torch.ops.mkldnn._linear_pointwise(x, packed, None, "none", [], ""), rows, args.repeats
            )
            print(f"| {rows} | {mkl:.2f} | {onednn:.2f} | {mkl / onednn:.1f}x |", flush=True)


if __name__ == "__main__":
    main()
