#!/usr/bin/python3
"""What the gateway costs: aggregate output throughput of 16 concurrent gRPC
streams through `atrium serve` (gateway -> per-tenant atrium-worker ->
engine) against the same load on the in-process engine (`atrium bench-serve`).

  /usr/bin/python3 bench/gateway.py               # SmolLM2, 2 threads, ~2 min
  /usr/bin/python3 bench/gateway.py --clients 8 --repetitions 5

Both sides get the same shape of work: --clients closed-loop clients, each
sending its next request when the last one ends, --requests in all, prompts
of --prompt-tokens tokens (each request's own, so the prefix cache never
shares one), --output-tokens greedy tokens with end-of-sequence ignored. The
two runs alternate (--repetitions times) so the machine's slow and fast
phases hit both alike, and the medians are compared:

  ratio = gateway output tok/s / in-process output tok/s     (issue 5: >= 0.90)

Writes bench/results/gateway.json. Needs Debian's python3-grpcio (the
interpreter above) and a build with the Python stubs (build/python). Not a
test: never run in CI.
"""
import argparse
import json
import os
import re
import select
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
REPO_DIR = os.path.dirname(BENCH_DIR)

PARAGRAPH = ("The history of astronomy is the story of people looking up and trying to make sense of what they "
             "saw. Early observers tracked the motions of the sun, the moon and the planets against the fixed "
             "stars, built calendars around them, and slowly learned to predict eclipses. Later, telescopes "
             "revealed moons around Jupiter, phases of Venus and countless faint stars in the Milky Way. ")


class Serve:
    """`atrium serve` on a fresh data directory and a free port."""

    def __init__(self, atrium, threads):
        self.dir = tempfile.mkdtemp(prefix="atrium-bench-gw-")
        self.log = open(os.path.join(self.dir, "serve.log"), "w")
        self.proc = subprocess.Popen([atrium, "serve", "--data-dir", os.path.join(self.dir, "data"), "--host",
                                      "127.0.0.1", "--port", "0", "--metrics-port", "0", "-t", str(threads)],
                                     stdout=subprocess.PIPE, stderr=self.log)
        banner, deadline = "", time.time() + 60
        while "atrium: listening on" not in banner:
            if time.time() > deadline or self.proc.poll() is not None:
                self.stop()
                sys.exit("atrium serve did not start; its log: " + self.log.name)
            ready, _, _ = select.select([self.proc.stdout], [], [], 1.0)
            if ready:
                banner += os.read(self.proc.stdout.fileno(), 65536).decode()
        self.address = "127.0.0.1:" + re.search(r"listening on 127\.0\.0\.1:(\d+)", banner).group(1)
        with open(os.path.join(self.dir, "data", "admin.key")) as f:
            self.admin_key = f.read().strip()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def gateway_run(pb, stubs, key, model, prompts, clients, max_tokens):
    """prompts (one per request) through `clients` closed-loop streams."""
    inference_pb2 = pb
    md = (("authorization", "Bearer " + key),)
    lock, next_i, generated, ttft = threading.Lock(), [0], [0], []
    errors = []

    def client():
        while True:
            with lock:
                i = next_i[0]
                next_i[0] += 1
            if i >= len(prompts):
                return
            req = inference_pb2.GenerateRequest(model=model, prompt=prompts[i], config=inference_pb2.GenerationConfig(
                temperature=0.0, max_tokens=max_tokens, ignore_eos=True))
            start, first, n = time.time(), None, 0
            try:
                for msg in stubs.Generate(req, metadata=md, timeout=600):
                    if msg.token_ids and first is None:
                        first = time.time()
                    n += len(msg.token_ids)
            except Exception as e:  # noqa: BLE001 - reported below
                errors.append(repr(e))
                return
            with lock:
                generated[0] += n
                ttft.append((first or time.time()) - start)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    t0 = time.time()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.time() - t0
    if errors:
        sys.exit("gateway run failed: " + errors[0])
    return {"output_tokens": generated[0], "seconds": elapsed, "output_tokens_per_second": generated[0] / elapsed,
            "ttft_ms_p50": 1000 * statistics.median(ttft)}


def engine_run(atrium, args):
    cmd = [atrium, "bench-serve", "-m", args.model.split("/", 1)[1], "-t", str(args.threads), "--clients",
           str(args.clients), "--requests", str(args.requests), "--prompt-tokens", str(args.prompt_tokens),
           "--output-tokens", str(args.output_tokens)]
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if p.returncode != 0:
        sys.exit("atrium bench-serve failed:\n" + p.stderr)
    r = json.loads(p.stdout)
    return {"output_tokens_per_second": r["output_tokens_per_second"], "ttft_ms_p50": r["ttft_ms"]["p50"],
            "command": cmd}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--build", default=os.path.join(REPO_DIR, "build"), help="the build directory")
    parser.add_argument("--model", default="models/smollm2-135m-instruct")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--requests", type=int, default=32)
    parser.add_argument("--prompt-tokens", type=int, default=64)
    parser.add_argument("--output-tokens", type=int, default=128)
    parser.add_argument("--repetitions", type=int, default=3)
    parser.add_argument("--out", default=os.path.join(BENCH_DIR, "results", "gateway.json"))
    args = parser.parse_args()
    sys.path.insert(0, os.path.join(args.build, "python"))
    try:
        import grpc
        from atrium.v1 import admin_pb2, admin_pb2_grpc, inference_pb2, inference_pb2_grpc
    except ImportError as e:
        sys.exit(f"{e}: run with Debian's /usr/bin/python3 (python3-grpcio) after a build (build/python)")
    atrium = os.path.join(args.build, "atrium")

    serve = Serve(atrium, args.threads)
    try:
        channel = grpc.insecure_channel(serve.address)
        admin = admin_pb2_grpc.AdminStub(channel)
        stubs = inference_pb2_grpc.InferenceStub(channel)
        md = (("authorization", "Bearer " + serve.admin_key),)
        admin.CreateTenant(admin_pb2.CreateTenantRequest(tenant_id="bench"), metadata=md, timeout=30)
        key = admin.CreateApiKey(admin_pb2.CreateApiKeyRequest(parent="tenants/bench"), metadata=md,
                                 timeout=30).secret
        # Prompts of exactly --prompt-tokens tokens, each starting with its
        # own number so no two share a cached block.
        prompts = []
        for i in range(args.requests):
            ids = list(stubs.Tokenize(inference_pb2.TokenizeRequest(model=args.model, text=f"Note {i}. " + PARAGRAPH * 4),
                                      metadata=(("authorization", "Bearer " + key),), timeout=120).token_ids)
            text = stubs.Detokenize(inference_pb2.DetokenizeRequest(model=args.model,
                                                                    token_ids=ids[:args.prompt_tokens]),
                                    metadata=(("authorization", "Bearer " + key),), timeout=30).text
            prompts.append(text)
        gateway_run(inference_pb2, stubs, key, args.model, prompts[:1], 1, 4)  # warm-up: worker and model loaded

        gateways, engines = [], []
        for rep in range(args.repetitions):
            engines.append(engine_run(atrium, args))
            gateways.append(gateway_run(inference_pb2, stubs, key, args.model, prompts, args.clients,
                                        args.output_tokens))
            print(f"run {rep + 1}: in-process {engines[-1]['output_tokens_per_second']:.1f} tok/s, "
                  f"gateway {gateways[-1]['output_tokens_per_second']:.1f} tok/s", file=sys.stderr, flush=True)
        channel.close()
    finally:
        serve.stop()

    def med(runs):
        return statistics.median(r["output_tokens_per_second"] for r in runs)

    ratio = med(gateways) / med(engines)
    print(f"{args.model}, {args.threads} threads, {args.clients} clients, {args.requests} requests, "
          f"{args.prompt_tokens} prompt + {args.output_tokens} output tokens")
    print(f"in-process engine : {med(engines):8.1f} tok/s  (runs {[round(r['output_tokens_per_second'], 1) for r in engines]})")
    print(f"through the gateway: {med(gateways):8.1f} tok/s  (runs {[round(r['output_tokens_per_second'], 1) for r in gateways]})")
    print(f"gateway / in-process (medians of {args.repetitions}): {ratio:.3f}")
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump({"model": args.model, "threads": args.threads, "clients": args.clients, "ratio": ratio,
                   "in_process": engines, "gateway": gateways}, f, indent=2)
        f.write("\n")


if __name__ == "__main__":
    main()
