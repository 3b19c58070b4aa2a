#!/usr/bin/env python3
"""Launch-to-first-token: wall time from starting `atrium generate` to the
first byte of generated text on its stdout, on a real model file (mmap, no
copy of the weights). Prints the median and min-max of N runs.

  python3 bench/startup.py [--model smollm2-135m-instruct] [--runs 10] [--threads 2]
"""
import argparse
import os
import statistics
import subprocess
import time

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("--binary", default=os.path.join(os.path.dirname(__file__), "..", "build", "atrium"))
parser.add_argument("--model", default="smollm2-135m-instruct")
parser.add_argument("--runs", type=int, default=10)
parser.add_argument("--threads", type=int, default=2)
parser.add_argument("--prompt", default="The capital of France is")
args = parser.parse_args()

times = []
for _ in range(args.runs):
    t0 = time.perf_counter()
    p = subprocess.Popen([args.binary, "generate", "-m", args.model, "--prompt", args.prompt, "--temperature", "0",
                          "-n", "8", "-t", str(args.threads), "-q"],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    first = p.stdout.read(1)
    times.append(time.perf_counter() - t0)
    p.stdout.read()
    p.wait()
    if not first:
        raise SystemExit("atrium printed nothing")
ms = sorted(t * 1000 for t in times)
print(f"launch to first token, {args.model}, {args.threads} threads, {args.runs} runs: "
      f"median {statistics.median(ms):.0f} ms (min {ms[0]:.0f}, max {ms[-1]:.0f})")
