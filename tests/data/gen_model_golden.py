#!/usr/bin/env python3
"""Regenerates tests/data/golden/<model>.json: llama.cpp's view of the real
model files, the oracle of tests/models/golden_model_test.cc.

For each prompt: llama.cpp's prompt token ids, its 64-token greedy
continuation (argmax of its logits at every step, ties to the lowest id), and
the margin between its top two logits at every greedy step, and the logits
at the last prompt position (the top 256 ids and values, plus min/max/mean/std
of the whole vector), so the test can check top-10 sets and the max abs
difference without committing whole vocabularies.

llama.cpp is a test tool only, never linked into Atrium. Build it from PyPI's
source package with native x86 flags but without AMX (its AMX path crashes on
VMs that do not enable AMX tile state):

  CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON \
    -DGGML_F16C=ON -DGGML_AVX512=ON -DGGML_AVX512_VNNI=ON -DGGML_AVX512_VBMI=ON \
    -DGGML_AMX_INT8=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_BF16=OFF" \
    pip install --no-binary :all: llama-cpp-python==0.3.36
  python3 tests/data/gen_model_golden.py

The KV cache is f32 and flash attention is off, as in Atrium.

  python3 tests/data/gen_model_golden.py --self-check

does not write anything: it reruns llama.cpp with flash attention on, and
with its default f16 KV cache, and reports how many 64-token greedy
continuations still equal the golden ones: a measure of how sensitive these
sequences are to last-bit numerical differences within llama.cpp itself.
"""
import json
import os
import sys

import numpy as np
import llama_cpp

MODELS_DIR = os.environ.get("ATRIUM_MODELS_DIR", os.path.expanduser("~/.cache/atrium/models"))
OUT_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "golden")
N_GENERATE = 64
TOP_N = 256

RAW_PROMPTS = [
    "The capital of France is",
    "Once upon a time, in a small village by the sea,",
    "def fibonacci(n):\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n",
    "Photosynthesis is the process by which",
    "1, 2, 3, 5, 8, 13,",
    "Translate to French: I would like a cup of coffee, please.\nFrench:",
    "The three most important things to remember when learning to program are",
]

MODELS = {
    "smollm2": {
        "file": "SmolLM2-135M-Instruct.Q4_1.gguf",
        "chat": "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
                "<|im_start|>user\nWhat is the tallest mountain in the world?<|im_end|>\n<|im_start|>assistant\n",
    },
    "gemma3": {
        "file": "gemma-3-270m-q4_k_m.gguf",
        "chat": "<bos><start_of_turn>user\nWhat is the tallest mountain in the world?<end_of_turn>\n"
                "<start_of_turn>model\n",
    },
}


def logits_at_last(llm):
    return np.array(llm.scores[llm.n_tokens - 1], dtype=np.float32)


def run_model(key, spec):
    path = os.path.join(MODELS_DIR, spec["file"])
    llm = llama_cpp.Llama(path, n_ctx=512, n_batch=512, n_threads=os.cpu_count(), logits_all=True,
                          type_k=0, type_v=0, flash_attn=False, verbose=False)
    add_bos = llm.metadata.get("tokenizer.ggml.add_bos_token", "false") == "true"
    cases = []
    prompts = [(p, False) for p in RAW_PROMPTS] + [(spec["chat"], True)]
    for text, special in prompts:
        # The chat prompt carries its own <bos> where the model wants one.
        ids = llm.tokenize(text.encode(), add_bos=add_bos and not special, special=special)
        llm.reset()
        llm.eval(ids)
        logits = logits_at_last(llm)
        order = np.argsort(-logits, kind="stable")[:TOP_N]
        generated = []
        margins = []
        step_logits = logits
        for _ in range(N_GENERATE):
            tok = int(np.argmax(step_logits))
            top2 = np.partition(step_logits, -2)[-2:]
            generated.append(tok)
            margins.append(round(float(top2[1] - top2[0]), 4))
            llm.eval([tok])
            step_logits = logits_at_last(llm)
        cases.append({
            "prompt": text,
            "parse_special": special,
            "prompt_ids": [int(t) for t in ids],
            "greedy_ids": generated,
            "greedy_margins": margins,
            "greedy_text": llm.detokenize(generated).decode("utf-8", errors="replace"),
            "top_ids": [int(i) for i in order],
            "top_logits": [round(float(logits[i]), 5) for i in order],
            "logit_min": float(logits.min()),
            "logit_max": float(logits.max()),
            "logit_mean": float(logits.mean()),
            "logit_std": float(logits.std()),
        })
        print(f"{key}: {text[:40]!r} -> {cases[-1]['greedy_text'][:60]!r}", file=sys.stderr)
    out = {
        "model_file": spec["file"],
        "reference": f"llama.cpp via llama-cpp-python {llama_cpp.__version__}, f32 KV cache, no flash attention",
        "n_generate": N_GENERATE,
        "cases": cases,
    }
    os.makedirs(OUT_DIR, exist_ok=True)
    with open(os.path.join(OUT_DIR, f"{key}.json"), "w") as f:
        json.dump(out, f, indent=1, ensure_ascii=False)


def self_check(key, spec):
    with open(os.path.join(OUT_DIR, f"{key}.json")) as f:
        golden = json.load(f)
    path = os.path.join(MODELS_DIR, spec["file"])
    variants = [("flash attention on, f32 KV", dict(flash_attn=True, type_k=0, type_v=0)),
                ("f16 KV (llama.cpp's default)", dict(flash_attn=False, type_k=1, type_v=1))]
    for label, kwargs in variants:
        llm = llama_cpp.Llama(path, n_ctx=512, n_threads=os.cpu_count(), logits_all=True, verbose=False, **kwargs)
        same, first = 0, []
        for case in golden["cases"]:
            llm.reset()
            llm.eval(case["prompt_ids"])
            out = []
            for _ in range(len(case["greedy_ids"])):
                out.append(int(np.argmax(logits_at_last(llm))))
                llm.eval([out[-1]])
            same += out == case["greedy_ids"]
            first.append(next((i for i, (a, b) in enumerate(zip(out, case["greedy_ids"])) if a != b), len(out)))
        print(f"{key}: llama.cpp with {label}: {same}/{len(first)} continuations identical to the golden ones; "
              f"first divergence at {first}")


if __name__ == "__main__":
    check = "--self-check" in sys.argv
    keys = [a for a in sys.argv[1:] if not a.startswith("--")]
    for key, spec in MODELS.items():
        if keys and key not in keys:
            continue
        (self_check if check else run_model)(key, spec)
