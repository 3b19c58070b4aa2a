#!/usr/bin/env python3
"""What batching buys: aggregate decode throughput of 16 concurrent streams
against one stream, on the same model, threads and request mix.

  python3 bench/serve.py                          # SmolLM2, 2 threads, ~1 min
  python3 bench/serve.py --model gemma-3-270m --threads 2 --requests 32
  python3 bench/serve.py --clients 8 --output-tokens 64:64

Runs `atrium bench-serve` with the same fixed prompt and output lengths
(default 64 prompt tokens, 128 generated, end-of-sequence ignored, so nearly
all the work is decode), alternately with 1 client and with --clients (16),
--repetitions times (3), and compares the medians. With one client every
step decodes one token and reads every weight for it; with 16, one step decodes up to 16 tokens for about the same weight
reads, so the aggregate should be several times higher while each stream's
inter-token latency grows a little.

Prints the median runs, every run's tok/s, the ratio of each 1-stream run
to the 16-stream run right after it (the two share the VM's phase), and two
ratios of 16 clients to 1:

  decode:      tok/s over the steps that only decoded (no prompt tokens in
               the batch; bench-serve's decode_only), what llama.cpp's
               batched-bench reports as S_TG
  end to end:  generated tokens / wall time, prefill of every request included

Beside them, unless --skip-peer, llama.cpp's llama-batched-bench on the same
GGUF file, threads, prompt and output lengths (-npl 1,16: 16 sequences
prefilled, then decoded together), alternately with Atrium's runs: its S_TG
and its generated tokens / total time. It builds the tool once into
bench/.cache/ as bench/compare.py does (the first llama.cpp tool takes 5-10
min; later ones a minute).

It also reads a 64 MiB buffer with bench/membw.cc before and after (2
threads, on 2 MiB pages as Atrium's weights are): 34-54 GB/s over
2026-11-29's afternoon, higher the more of the shared L3 the VM has. One stream's weights (96 MB) come partly from that L3,
and sixteen streams' weights and KV caches (140+ MB) from DRAM, so the ratio
is higher in a shared phase: the printout says which phase the runs had.

Writes bench/results/serve.json (every run's full JSON, the ratios, the
membw readings, the command lines). Not a test: never run in CI; the numbers depend on the
machine and on what else it runs.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
REPO_DIR = os.path.dirname(BENCH_DIR)


def run(args, clients, requests):
    cmd = [args.binary, "bench-serve", "-m", args.model, "-t", str(args.threads), "--clients", str(clients),
           "--requests", str(requests), "--prompt-tokens", args.prompt_tokens, "--output-tokens",
           args.output_tokens, "--seed", str(args.seed), "--kv-type", args.kv_type]
    print("$ " + " ".join(cmd), file=sys.stderr, flush=True)
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=None if args.verbose else subprocess.PIPE, text=True)
    if p.returncode != 0:
        sys.exit(f"atrium bench-serve failed ({p.returncode}):\n{p.stderr or ''}{p.stdout}")
    return {"command": cmd, "result": json.loads(p.stdout)}


def run_peer(args, model_path, clients):
    """llama-batched-bench with 1 and `clients` sequences: the command and, per
    sequence count, S_TG ("decode"), generated tokens / total time
    ("end_to_end") and the raw record; None for length ranges, which it cannot take."""
    lengths = []
    for spec in (args.prompt_tokens, args.output_tokens):
        lo, _, hi = spec.partition(":")
        if hi and hi != lo:
            return None  # batched-bench takes fixed lengths only
        lengths.append(int(lo))
    n_prompt, n_gen = lengths
    ctx = max(4096, clients * (n_prompt + n_gen))
    cmd = [args.peer, "-m", model_path, "-t", str(args.threads), "-tb", str(args.threads), "-c", str(ctx),
           "-b", "2048", "-ub", "512", "-npp", str(n_prompt), "-ntg", str(n_gen), "-npl", f"1,{clients}",
           "--output-format", "jsonl"]
    if args.kv_type != "f16":  # llama.cpp's default is f16; a quantized V cache needs its flash attention
        cmd += ["-ctk", args.kv_type, "-ctv", args.kv_type, "-fa", "on"]
    print("$ " + " ".join(cmd), file=sys.stderr, flush=True)
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if p.returncode != 0:
        sys.exit(f"llama-batched-bench failed ({p.returncode}):\n{p.stderr[-2000:]}")
    out = {}
    for line in p.stdout.splitlines():
        if line.startswith("{") and '"speed_tg"' in line:
            r = json.loads(line)
            out[r["pl"]] = {"decode": r["speed_tg"], "end_to_end": r["pl"] * r["tg"] / r["t"], "raw": r}
    return {"command": cmd, "result": out}


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
    parser.add_argument("--kv-type", default="f16", choices=["f16", "q8_0", "f32"],
                        help="KV cache type of both engines (llama.cpp: -ctk/-ctv, with flash attention)")
    parser.add_argument("--repetitions", type=int, default=3, help="alternating runs of each; medians are compared")
    parser.add_argument("--skip-peer", action="store_true", help="do not run (or build) llama.cpp's batched-bench")
    parser.add_argument("--out", default=os.path.join(BENCH_DIR, "results", "serve.json"))
    parser.add_argument("--verbose", action="store_true", help="show bench-serve's stderr summaries")
    args = parser.parse_args()
    if not os.path.exists(args.binary):
        sys.exit(f"{args.binary} not found: build first (scripts/build.sh) or pass --binary")
    sys.path.insert(0, BENCH_DIR)
    import compare  # membw, and the pinned llama.cpp build that bench/compare.py uses
    args.peer = None if args.skip_peer else compare.build_llama_tool("llama-batched-bench")
    l3_probe = lambda: compare.measure_bandwidth([args.threads], mib=64)[args.threads]
    l3_before = l3_probe()

    # Alternate the runs (1, N, peer, 1, N, peer, ...) so the VM's slow and
    # fast phases hit all alike, and compare medians, as bench/compare.py does.
    singles, batches, peers = [], [], []
    for _ in range(args.repetitions):
        singles.append(run(args, 1, 4))
        batches.append(run(args, args.clients, args.requests or 2 * args.clients))
        if args.peer:
            peer = run_peer(args, singles[-1]["result"]["model"], args.clients)
            if peer is None:
                print("llama-batched-bench takes fixed lengths only: peer skipped", file=sys.stderr)
                args.peer = None
            else:
                peers.append(peer)

    l3_after = l3_probe()
    med = statistics.median
    at_tps = lambda runs: [r["result"]["output_tokens_per_second"] for r in runs]
    at_dec = lambda runs: [r["result"]["decode_only"]["tokens_per_second"] for r in runs]
    s0 = singles[0]["result"]
    table = {
        "atrium": {"decode": (med(at_dec(singles)), med(at_dec(batches))),
                   "end_to_end": (med(at_tps(singles)), med(at_tps(batches)))},
    }
    if peers:
        pe = lambda n, k: [p["result"][n][k] for p in peers]
        table["llama.cpp"] = {k: (med(pe(1, k)), med(pe(args.clients, k))) for k in ("decode", "end_to_end")}

    print(f"{s0['model']}, {s0['threads']} threads, {s0['kernels']} kernels, prompts {args.prompt_tokens}, "
          f"outputs {args.output_tokens} tokens; medians of {args.repetitions} alternating runs")
    n = args.clients
    print(f"{'engine':>10}  {'tok/s':>10}  {'1 stream':>9}  {f'{n} streams':>10}  {'ratio':>6}")
    ratios = {}
    for engine, rows in table.items():
        for kind, (one, many) in rows.items():
            ratios[f"{engine} {kind}"] = many / one
            print(f"{engine:>10}  {kind:>10}  {one:9.1f}  {many:10.1f}  {many / one:5.2f}x")
    b = sorted(batches, key=lambda r: r["result"]["output_tokens_per_second"])[len(batches) // 2]["result"]
    s = sorted(singles, key=lambda r: r["result"]["output_tokens_per_second"])[len(singles) // 2]["result"]
    print(f"Atrium ITL p50/p99 ms: 1 stream {s['itl_ms']['p50']:.1f}/{s['itl_ms']['p99']:.1f}, "
          f"{n} streams {b['itl_ms']['p50']:.1f}/{b['itl_ms']['p99']:.1f}; TTFT p50/p99 ms: 1 stream "
          f"{s['ttft_ms']['p50']:.1f}/{s['ttft_ms']['p99']:.1f}, {n} streams {b['ttft_ms']['p50']:.1f}/"
          f"{b['ttft_ms']['p99']:.1f}")
    fmt = lambda xs: [round(x, 1) for x in xs]
    print(f"Atrium runs, in order (decode tok/s): 1 stream {fmt(at_dec(singles))}, {n} streams {fmt(at_dec(batches))}")
    print(f"Atrium runs, in order (end to end):   1 stream {fmt(at_tps(singles))}, {n} streams {fmt(at_tps(batches))}")
    # Each 1-stream run against the N-stream run right after it: the two
    # share a VM phase, so these spread less with the phase than the runs.
    pairs = {k: [many / one for one, many in zip(f(singles), f(batches))]
             for k, f in (("decode", at_dec), ("end_to_end", at_tps))}
    for k, rs in pairs.items():
        print(f"Atrium {k} ratio of each pair: {[round(r, 2) for r in rs]} (median {med(rs):.2f}x, "
              f"lowest {min(rs):.2f}x)")
    if peers:
        print(f"llama.cpp runs (S_TG): 1 stream {fmt(pe(1, 'decode'))}, {n} streams {fmt(pe(n, 'decode'))}")
    print(f"membw, 64 MiB, {args.threads} threads: {l3_before:.1f} GB/s before, {l3_after:.1f} after "
          f"(higher: more of the shared L3 to ourselves)")

    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump({"clients": n, "ratios": ratios, "pair_ratios": pairs, "medians": table,
                   "membw_64mib_gbps": {"before": l3_before, "after": l3_after}, "single_runs": singles,
                   "batched_runs": batches, "peer_runs": peers}, f, indent=2)
        f.write("\n")
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
