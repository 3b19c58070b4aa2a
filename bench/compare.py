#!/usr/bin/env python3
"""Atrium beside llama.cpp on the CPU: same GGUF files, same thread counts,
runs alternated, with the memory-bandwidth floor under decode.

  python3 bench/compare.py                      # ~5 min (+5-10 min to build llama.cpp once)
  python3 bench/compare.py --threads 2 --repetitions 3 --models ~/m/a.gguf

What it does, in order:
  1. Builds llama.cpp's llama-bench once into bench/.cache/ from PyPI's
     llama-cpp-python source package (pinned, so figures stay comparable over
     time), with the x86 SIMD flags this CPU has but AMX off (its AMX path
     segfaults on our VMs). Later runs reuse the binary.
  2. Compiles bench/membw.cc and measures read bandwidth over a 1 GiB buffer:
     decoding one token reads every weight once, so bandwidth divided by the
     weight bytes per token is the fastest decode any engine can reach (the
     "floor" on time per token, a ceiling on tok/s).
  3. For every model and thread count, runs `atrium bench` and `llama-bench`
     alternately (A B A B ...), so slow drift on this shared machine hits
     both engines alike, and keeps each process's peak RSS (wait4).
  4. Prints the table; writes <out>/latest.json (every run, raw), latest.csv
     (the summary) and latest.png (a bar chart).

Metrics (median of the repetitions, with min-max):
  decode tok/s   128 greedy tokens (Atrium: after an 8-token prompt; llama.cpp: tg128)
  prefill tok/s  one 512-token prompt in one batch (pp512)
  TTFT ms        one 8-token prompt to logits of its last token (llama.cpp: pp8)
  peak RSS MiB   of the whole benchmark process (model is mmap'd by both)
The ratio column is Atrium / llama.cpp: above 1 is better for tok/s, below 1
is better for ms and MiB; the "better" column says who wins each row.

Not a test: never run in CI. The numbers depend on the machine and on what
else it runs; compare figures measured in one run only.
"""
import argparse
import csv
import datetime
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
REPO_DIR = os.path.dirname(BENCH_DIR)
CACHE_DIR = os.path.join(BENCH_DIR, ".cache")
LLAMA_CPP_PYTHON_VERSION = "0.3.36"
MODELS_DIR = os.path.expanduser("~/.cache/atrium/models")
DEFAULT_MODELS = [
    os.path.join(MODELS_DIR, "SmolLM2-135M-Instruct.Q4_1.gguf"),
    os.path.join(MODELS_DIR, "gemma-3-270m-q4_k_m.gguf"),
]
PROMPT_TOKENS, GEN_TOKENS, TTFT_PROMPT_TOKENS = 512, 128, 8

# (metric key, label, unit, True when higher is better)
METRICS = [
    ("decode_tps", "decode", "tok/s", True),
    ("prefill_tps", "prefill", "tok/s", True),
    ("ttft_ms", "TTFT", "ms", False),
    ("peak_rss_mib", "peak RSS", "MiB", False),
]
ENGINES = ["atrium", "llama.cpp"]


def log(msg):
    # Progress goes to stderr so that stdout holds only the final table.
    print(msg, file=sys.stderr, flush=True)


def cpu_flags():
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    return set()


def cpu_model():
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


# ---------------------------------------------------------------- the peer

def llama_cmake_flags():
    """GGML's SIMD switches for this CPU. GGML_NATIVE would also turn on AMX
    where the CPU has it, and llama.cpp's AMX path segfaults on our VMs, so
    every ISA is named explicitly and AMX is forced off."""
    have = cpu_flags()
    isa = {
        "GGML_AVX": "avx" in have,
        "GGML_AVX2": "avx2" in have,
        "GGML_FMA": "fma" in have,
        "GGML_F16C": "f16c" in have,
        # The AVX-512 kernels need F/BW/DQ/VL together; VNNI and VBMI are extras.
        "GGML_AVX512": {"avx512f", "avx512bw", "avx512dq", "avx512vl"} <= have,
    }
    isa["GGML_AVX512_VNNI"] = isa["GGML_AVX512"] and "avx512_vnni" in have
    isa["GGML_AVX512_VBMI"] = isa["GGML_AVX512"] and "avx512vbmi" in have
    flags = ["-DCMAKE_BUILD_TYPE=Release", "-DGGML_NATIVE=OFF"]
    flags += [f"-D{k}={'ON' if v else 'OFF'}" for k, v in isa.items()]
    flags += ["-DGGML_AMX_INT8=OFF", "-DGGML_AMX_TILE=OFF", "-DGGML_AMX_BF16=OFF",
              "-DLLAMA_CURL=OFF", "-DLLAMA_BUILD_TESTS=OFF", "-DLLAMA_BUILD_EXAMPLES=OFF",
              "-DLLAMA_BUILD_TOOLS=ON", "-DLLAMA_BUILD_SERVER=OFF", "-DBUILD_SHARED_LIBS=OFF"]
    return flags


def llama_tool_path(tool="llama-bench"):
    return os.path.join(CACHE_DIR, f"llama-bench-{LLAMA_CPP_PYTHON_VERSION}-build", "bin", tool)


def build_llama_tool(tool="llama-bench"):
    """Returns one of llama.cpp's tools (llama-bench, llama-batched-bench),
    building it first if it is missing; all share one build directory."""
    binary = llama_tool_path(tool)
    if os.path.exists(binary):
        return binary
    os.makedirs(CACHE_DIR, exist_ok=True)
    sdist = os.path.join(CACHE_DIR, f"llama_cpp_python-{LLAMA_CPP_PYTHON_VERSION}.tar.gz")
    if not os.path.exists(sdist):
        log(f"downloading llama-cpp-python=={LLAMA_CPP_PYTHON_VERSION} (source) from PyPI")
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
                        f"llama-cpp-python=={LLAMA_CPP_PYTHON_VERSION}", "-d", CACHE_DIR], check=True)
    src_root = os.path.join(CACHE_DIR, f"llama_cpp_python-{LLAMA_CPP_PYTHON_VERSION}")
    if not os.path.isdir(src_root):
        with tarfile.open(sdist) as tar:
            tar.extractall(CACHE_DIR, filter="data")
    build_dir = os.path.dirname(os.path.dirname(binary))
    if not os.path.exists(os.path.join(build_dir, "CMakeCache.txt")):
        generator = ["-G", "Ninja"] if shutil.which("ninja") else []
        flags = llama_cmake_flags()
        log("configuring llama.cpp: " + " ".join(f for f in flags if "GGML_" in f))
        subprocess.run(["cmake", "-S", os.path.join(src_root, "vendor", "llama.cpp"), "-B", build_dir,
                        *generator, *flags], check=True, stdout=subprocess.DEVNULL)
    log(f"building {tool} (once; the first llama.cpp tool takes ~5-10 min on 2 cores)")
    # -j2: the benchmark machines have 2 cores, and a wider build only thrashes.
    subprocess.run(["cmake", "--build", build_dir, "--target", tool, "-j2"], check=True)
    return binary


# ------------------------------------------------------- bandwidth (floor)

def measure_bandwidth(threads, mib=1024):
    """GB/s of reading a `mib` MiB buffer (default 1 GiB: DRAM), per thread
    count, best of 10 passes."""
    source = os.path.join(BENCH_DIR, "membw.cc")
    binary = os.path.join(CACHE_DIR, "membw")
    os.makedirs(CACHE_DIR, exist_ok=True)
    if not os.path.exists(binary) or os.path.getmtime(binary) < os.path.getmtime(source):
        subprocess.run(["g++", "-O3", "-march=native", "-pthread", source, "-o", binary], check=True)
    out = subprocess.run([binary, "--mib", str(mib), "--passes", "10", "--threads", ",".join(map(str, threads))],
                         check=True, capture_output=True, text=True).stdout
    result = json.loads(out)
    return {int(t): gbps for t, gbps in result["gbps"].items()}


# ----------------------------------------------------------------- runs

def run_measured(cmd):
    """Runs cmd; returns (stdout, peak RSS of that process in MiB). os.wait4
    gives the rusage of exactly this child, which Popen.wait would discard."""
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err)
        out = proc.stdout.read()
        proc.stdout.close()
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            err.seek(0)
            tail = err.read().decode(errors="replace")[-2000:]
            raise RuntimeError(f"{' '.join(cmd)} exited with {proc.returncode}:\n{tail}")
    return out.decode(), usage.ru_maxrss / 1024  # ru_maxrss is KiB on Linux


def run_atrium(atrium, model, threads):
    out, rss = run_measured([atrium, "bench", "-m", model, "-t", str(threads),
                             "--prompt-tokens", str(PROMPT_TOKENS), "--gen-tokens", str(GEN_TOKENS), "-r", "1"])
    j = json.loads(out)
    return {
        "decode_tps": j["decode_tokens_per_second"],
        "prefill_tps": j["prefill_tokens_per_second"],
        "ttft_ms": j["time_to_first_token_ms"],
        "peak_rss_mib": rss,
        "weight_bytes_per_token": j["weight_bytes_per_token"],
        "kernels": j.get("kernels"),
    }


def run_llama(llama_bench, model, threads):
    # One process runs pp8 (TTFT), pp512 and tg128, the way Atrium's one
    # process does, so peak RSS covers the same work. Flash attention off:
    # Atrium computes attention unfused, and llama.cpp's default "auto" turns
    # it on for CPU. llama-bench warms up each test before timing it.
    out, rss = run_measured([llama_bench, "-m", model, "-t", str(threads),
                             "-p", f"{TTFT_PROMPT_TOKENS},{PROMPT_TOKENS}", "-n", str(GEN_TOKENS),
                             "-r", "1", "-fa", "0", "-o", "json"])
    tests = json.loads(out)

    def find(n_prompt, n_gen):
        for t in tests:
            if t["n_prompt"] == n_prompt and t["n_gen"] == n_gen:
                return t
        raise RuntimeError(f"llama-bench printed no pp{n_prompt}/tg{n_gen} result")

    return {
        "decode_tps": find(0, GEN_TOKENS)["avg_ts"],
        "prefill_tps": find(PROMPT_TOKENS, 0)["avg_ts"],
        "ttft_ms": find(TTFT_PROMPT_TOKENS, 0)["avg_ns"] / 1e6,
        "peak_rss_mib": rss,
        "build": f"{tests[0].get('build_commit', '?')} ({tests[0].get('build_number', '?')})",
    }


# -------------------------------------------------------------- summary

def spread(values):
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values)}


def summarize(runs, models, threads_list, bandwidth):
    rows, floors = [], []
    for model in models:
        name = model_name(model)
        for threads in threads_list:
            mine = [r for r in runs if r["model"] == name and r["threads"] == threads]
            by_engine = {e: [r for r in mine if r["engine"] == e] for e in ENGINES}
            for key, label, unit, higher_better in METRICS:
                row = {"model": name, "threads": threads, "metric": f"{label} {unit}"}
                for e in ENGINES:
                    vals = [r[key] for r in by_engine[e] if r.get(key) is not None]
                    row[e] = spread(vals) if vals else None
                a, b = row["atrium"], row["llama.cpp"]
                row["ratio"] = a["median"] / b["median"] if a and b else None
                if row["ratio"] is None:
                    row["better"] = "n/a"
                else:
                    row["better"] = "atrium" if (row["ratio"] > 1) == higher_better else "llama.cpp"
                rows.append(row)
            weight_bytes = next((r["weight_bytes_per_token"] for r in by_engine["atrium"]), None)
            if weight_bytes and threads in bandwidth:
                floor_tps = bandwidth[threads] * 1e9 / weight_bytes
                decode = {e: next((r[e] for r in rows if r["model"] == name and r["threads"] == threads
                                   and r["metric"].startswith("decode")), None) for e in ENGINES}
                floors.append({
                    "model": name, "threads": threads, "read_gbps": bandwidth[threads],
                    "weight_mb_per_token": weight_bytes / 1e6, "floor_tps": floor_tps,
                    **{f"{e}_fraction": (decode[e]["median"] / floor_tps if decode[e] else None) for e in ENGINES},
                })
    return rows, floors


def model_name(path):
    return os.path.splitext(os.path.basename(path))[0]


def fmt(x, digits=1):
    return "n/a" if x is None else f"{x:,.{digits}f}"


def fmt_spread(s):
    if not s:
        return "n/a"
    return f"{fmt(s['median'])} ({fmt(s['min'])}-{fmt(s['max'])})"


def markdown_tables(rows, floors):
    lines = ["| model | threads | metric | Atrium median (min-max) | llama.cpp median (min-max) | Atrium/llama.cpp | better |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['threads']} | {r['metric']} | {fmt_spread(r['atrium'])} | "
                     f"{fmt_spread(r['llama.cpp'])} | {fmt(r['ratio'], 2)} | {r['better']} |")
    lines += ["", "| model | threads | read GB/s | weight MB/token | floor tok/s | Atrium % of floor | llama.cpp % of floor |",
              "|---|---|---|---|---|---|---|"]
    for f in floors:
        pct = {e: fmt(f[f"{e}_fraction"] * 100, 0) + "%" if f[f"{e}_fraction"] is not None else "n/a" for e in ENGINES}
        lines.append(f"| {f['model']} | {f['threads']} | {fmt(f['read_gbps'])} | {fmt(f['weight_mb_per_token'])} | "
                     f"{fmt(f['floor_tps'])} | {pct['atrium']} | {pct['llama.cpp']} |")
    return "\n".join(lines)


def write_csv(path, rows, floors):
    floor_of = {(f["model"], f["threads"]): f for f in floors}
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["model", "threads", "metric",
                    "atrium_median", "atrium_min", "atrium_max",
                    "llama_cpp_median", "llama_cpp_min", "llama_cpp_max",
                    "ratio_atrium_over_llama_cpp", "better", "floor_tok_s"])
        for r in rows:
            a, b = r["atrium"] or {}, r["llama.cpp"] or {}
            fl = floor_of.get((r["model"], r["threads"])) if r["metric"].startswith("decode") else None
            w.writerow([r["model"], r["threads"], r["metric"],
                        a.get("median"), a.get("min"), a.get("max"),
                        b.get("median"), b.get("min"), b.get("max"),
                        r["ratio"], r["better"], fl["floor_tps"] if fl else None])


def ensure_matplotlib():
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        log("installing matplotlib from PyPI (for the chart only)")
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "matplotlib"], check=True)
    import matplotlib
    matplotlib.use("Agg")  # no display on the benchmark machines
    import matplotlib.pyplot as plt
    return plt


def draw_chart(path, rows, floors, meta):
    plt = ensure_matplotlib()
    groups = sorted({(r["model"], r["threads"]) for r in rows}, key=lambda g: (g[0], g[1]))
    colors = {"atrium": "#1f77b4", "llama.cpp": "#ff7f0e"}
    fig, axes = plt.subplots(1, 2, figsize=(13, 5.2))
    width = 0.38
    for ax, prefix, title in [(axes[0], "decode", "Decode (tg128), tok/s"),
                              (axes[1], "prefill", "Prefill (pp512), tok/s")]:
        for i, e in enumerate(ENGINES):
            meds, lo, hi, texts = [], [], [], []
            for g in groups:
                r = next(r for r in rows if (r["model"], r["threads"]) == g and r["metric"].startswith(prefix))
                s = r[e]
                meds.append(s["median"] if s else 0)
                lo.append(s["median"] - s["min"] if s else 0)
                hi.append(s["max"] - s["median"] if s else 0)
                texts.append(f"{s['median']:.0f}" if s else "n/a")
            xs = [x + (i - 0.5) * width for x in range(len(groups))]
            bars = ax.bar(xs, meds, width, yerr=[lo, hi], capsize=3, color=colors[e], label=e)
            ax.bar_label(bars, labels=texts, padding=2, fontsize=8)
        if prefix == "decode":
            # The floor is a ceiling on tok/s: a short black line over each group.
            for x, g in enumerate(groups):
                f = next((f for f in floors if (f["model"], f["threads"]) == g), None)
                if f:
                    ax.hlines(f["floor_tps"], x - width, x + width, colors="black", linestyles="--",
                              label="bandwidth floor" if x == 0 else None)
                    ax.annotate(f"{f['floor_tps']:.0f}", (x + width, f["floor_tps"]), fontsize=8,
                                xytext=(2, -3), textcoords="offset points")
        ax.set_title(title)
        # Threads on the ticks, each model's name once under its groups:
        # full model names on every tick collide.
        ax.set_xticks(range(len(groups)), [f"{t} thread{'s' if t > 1 else ''}" for _, t in groups], fontsize=8)
        for model in dict.fromkeys(m for m, _ in groups):
            xs = [x for x, g in enumerate(groups) if g[0] == model]
            ax.annotate(model, (sum(xs) / len(xs), 0), xycoords=("data", "axes fraction"), xytext=(0, -26),
                        textcoords="offset points", ha="center", va="top", fontsize=8, fontweight="bold")
        ax.set_ylabel("tokens / second (median, bars: min-max)")
        ax.margins(y=0.3)  # headroom for the legend above the tallest bar or floor
        ax.legend(fontsize=8, loc="upper center", ncol=3)
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle(f"Atrium vs llama.cpp {meta['llama_cpp_python']} on {meta['cpu']} "
                 f"({meta['date']}, {meta['repetitions']} alternating runs each)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ----------------------------------------------------------------- main

def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", default=DEFAULT_MODELS, metavar="GGUF",
                   help="GGUF files, each given to both engines (default: the two models scripts/setup.sh "
                        "installs in ~/.cache/atrium/models)")
    p.add_argument("--threads", default="1,2",
                   help="comma-separated thread counts, the same for both engines (default: 1,2)")
    p.add_argument("--repetitions", type=int, default=5,
                   help="process launches per engine, model and thread count; each reports one "
                        "measurement, and the table shows their median and min-max (default: 5)")
    p.add_argument("--skip-build", action="store_true",
                   help="never build llama-bench; without a cached one, run Atrium alone "
                        "(llama.cpp columns read n/a)")
    p.add_argument("--out", default=os.path.join(BENCH_DIR, "results"),
                   help="folder for latest.json, latest.csv and latest.png (default: bench/results)")
    p.add_argument("--atrium", default=os.path.join(REPO_DIR, "build", "atrium"), help="the atrium binary")
    return p.parse_args()


def main():
    args = parse_args()
    threads_list = [int(t) for t in args.threads.split(",") if t.strip()]
    if not os.path.exists(args.atrium):
        sys.exit(f"{args.atrium} is missing: build Atrium first with scripts/build.sh")
    for m in args.models:
        if not os.path.exists(m):
            sys.exit(f"{m} is missing: scripts/setup.sh installs the default models")

    if args.skip_build:
        llama_bench = llama_tool_path() if os.path.exists(llama_tool_path()) else None
        if llama_bench is None:
            log("--skip-build and no cached llama-bench: measuring Atrium alone")
    else:
        llama_bench = build_llama_tool()

    load_before = os.getloadavg()
    log("measuring read bandwidth (1 GiB buffer)")
    bandwidth = measure_bandwidth(threads_list)

    runs = []
    total = len(args.models) * len(threads_list) * args.repetitions
    done = 0
    for model in args.models:
        for threads in threads_list:
            for rep in range(args.repetitions):
                done += 1
                log(f"[{done}/{total}] {model_name(model)}, {threads} threads, repetition {rep + 1}")
                # Alternate engines within each repetition, so both see the
                # same background load to within a few seconds.
                runs.append({"engine": "atrium", "model": model_name(model), "threads": threads, "rep": rep,
                             **run_atrium(args.atrium, model, threads)})
                if llama_bench:
                    runs.append({"engine": "llama.cpp", "model": model_name(model), "threads": threads, "rep": rep,
                                 **run_llama(llama_bench, model, threads)})

    rows, floors = summarize(runs, args.models, threads_list, bandwidth)
    meta = {
        "date": datetime.date.today().isoformat(),
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "kernel": platform.release(),
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
        "llama_cpp_python": LLAMA_CPP_PYTHON_VERSION,
        "llama_cpp_build": next((r["build"] for r in runs if r["engine"] == "llama.cpp"), None),
        "llama_cpp_cmake_flags": llama_cmake_flags(),
        "atrium_kernels": next((r["kernels"] for r in runs if r["engine"] == "atrium"), None),
        "repetitions": args.repetitions,
        "prompt_tokens": PROMPT_TOKENS,
        "gen_tokens": GEN_TOKENS,
        "ttft_prompt_tokens": TTFT_PROMPT_TOKENS,
        "read_bandwidth_gbps": bandwidth,
    }
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "latest.json"), "w") as f:
        json.dump({"meta": meta, "summary": rows, "floor": floors, "runs": runs}, f, indent=2)
    write_csv(os.path.join(args.out, "latest.csv"), rows, floors)
    draw_chart(os.path.join(args.out, "latest.png"), rows, floors, meta)

    print(f"{meta['cpu']}, {meta['cores']} cores, {meta['date']}; llama.cpp from llama-cpp-python "
          f"{LLAMA_CPP_PYTHON_VERSION}; {args.repetitions} alternating runs per engine; "
          f"load average {load_before[0]:.1f} before, {meta['load_average_after'][0]:.1f} after\n")
    print(markdown_tables(rows, floors))
    log(f"\nwrote {args.out}/latest.json, latest.csv, latest.png")


if __name__ == "__main__":
    main()
