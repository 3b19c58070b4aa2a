#!/usr/bin/env python3
"""What batching buys: aggregate decode throughput of 16 concurrent streams
against one stream, on the same model, threads and request mix.

  python3 bench/serve.py                          # SmolLM2, 2 threads, ~1 min
  python3 bench/serve.py --model gemma-3-270m --threads 2 --requests 32
  python3 bench/serve.py --clients 8 --output-tokens 64:64

Runs `atrium bench-serve` with the same fixed prompt and output lengths
(default 64 prompt tokens, 128 generated, end-of-sequence ignored, so nearly
all the work is decode), alternately with 1 client and with --clients (16),
--repetitions times (3), and compares the medians. With one client every step decodes one token and reads every weight
for it; with 16, one step decodes up to 16 tokens for about the same weight
reads, so the aggregate should be several times higher while each stream's
inter-token latency grows a little.

Prints the median runs, every run's tok/s, and the ratio

  speedup = output tok/s with 16 clients / output tok/s with 1 client

the same over decode steps alone (16 / mean inter-token time against
1 / mean inter-token time), which leaves out the prefill of new requests,
and writes bench/results/serve.json (both runs' full JSON, the ratio, the
command lines). Not a test: never run in CI; the numbers depend on the
machine and on what else it runs.
"""
import argparse
import json
import os
import subprocess
import sys

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
REPO_DIR = os.path.dirname(BENCH_DIR)


def run(args, clients, requests):
    cmd = [args.binary, "bench-serve", "-m", args.model, "-t", str(args.threads), "--clients", str(clients),
           "--requests", str(requests), "--prompt-tokens", args.prompt_tokens, "--output-tokens",
           args.output_tokens, "--seed", str(args.seed)]
    print("$ " + " ".join(cmd), file=sys.stderr, flush=True)
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=None if args.verbose else subprocess.PIPE, text=True)
    if p.returncode != 0:
        sys.exit(f"atrium bench-serve failed ({p.returncode}):\n{p.stderr or ''}{p.stdout}")
    return {"command": cmd, "result": json.loads(p.stdout)}


def row(label, r):
    return (f"{label:>10}  {r['output_tokens_per_second']:9.1f}  {r['itl_ms']['p50']:8.1f}  {r['itl_ms']['p99']:8.1f}"
            f"  {r['ttft_ms']['p50']:9.1f}  {r['peak_running']:5d}  {r['requests']:5d}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--binary", default=os.path.join(REPO_DIR, "build", "atrium"), help="the atrium binary")
    parser.add_argument("--model", default="smollm2-135m-instruct", help="catalog name or .gguf path")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--clients", type=int, default=16, help="concurrent clients of the batched run")
    parser.add_argument("--requests", type=int, default=None,
                        help="requests of the batched run (default: 2 per client); the 1-client run sends 4")
    parser.add_argument("--prompt-tokens", default="64:64", help="N or MIN:MAX, the same in both runs")
    parser.add_argument("--output-tokens", default="128:128", help="N or MIN:MAX, the same in both runs")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--repetitions", type=int, default=3, help="alternating runs of each; medians are compared")
    parser.add_argument("--out", default=os.path.join(BENCH_DIR, "results", "serve.json"))
    parser.add_argument("--verbose", action="store_true", help="show bench-serve's stderr summaries")
    args = parser.parse_args()
    if not os.path.exists(args.binary):
        sys.exit(f"{args.binary} not found: build first (scripts/build.sh) or pass --binary")

    # Alternate the two runs (1, N, 1, N, ...) so the VM's slow and fast
    # phases hit both alike, and compare medians, as bench/compare.py does.
    singles, batches = [], []
    for _ in range(args.repetitions):
        singles.append(run(args, 1, 4))
        batches.append(run(args, args.clients, args.requests or 2 * args.clients))

    def median_run(runs):
        ordered = sorted(runs, key=lambda r: r["result"]["output_tokens_per_second"])
        return ordered[len(ordered) // 2]

    single, batched = median_run(singles), median_run(batches)
    s, b = single["result"], batched["result"]
    ratio = b["output_tokens_per_second"] / s["output_tokens_per_second"]
    tps = lambda runs: [round(r["result"]["output_tokens_per_second"], 1) for r in runs]

    print(f"{s['model']}, {s['threads']} threads, {s['kernels']} kernels, prompts {args.prompt_tokens}, "
          f"outputs {args.output_tokens} tokens")
    print(f"{'clients':>10}  {'out tok/s':>9}  {'ITL p50':>8}  {'ITL p99':>8}  {'TTFT p50':>9}  {'batch':>5}  "
          f"{'reqs':>5}")
    print(row("1", s))
    print(row(str(args.clients), b))
    print(f"runs (tok/s, in order): 1 client {tps(singles)}, {args.clients} clients {tps(batches)}")
    print(f"aggregate decode speedup, {args.clients} streams / 1 stream (medians of {args.repetitions}): {ratio:.2f}x")
    # The same over decode steps alone: each run's streams / its mean
    # inter-token time, which leaves out the time new requests' prompts take
    # (what llama.cpp's batched-bench calls S_TG against S_PP).
    step_ratio = (b["peak_running"] / b["itl_ms"]["mean"]) / (1.0 / s["itl_ms"]["mean"])
    print(f"over decode steps alone ({b['peak_running']} / mean inter-token time, same runs): {step_ratio:.2f}x")

    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump({"single": single, "batched": batched, "clients": args.clients, "speedup": ratio,
                   "decode_step_speedup": step_ratio,
                   "single_runs": tps(singles), "batched_runs": tps(batches)}, f, indent=2)
        f.write("\n")
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
