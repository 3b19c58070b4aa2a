#!/usr/bin/env python3
"""Regenerates tests/data/chat/<template>.json: prompts rendered by Python
jinja2 with the settings Hugging Face's apply_chat_template uses
(ImmutableSandboxedEnvironment, trim_blocks, lstrip_blocks, raise_exception).

The SmolLM2 template is read from the model file when it is installed (else
the copy already in smollm2.json is reused); the Gemma 3 one is the published
google/gemma-3 tokenizer_config.json template, the same text Atrium embeds.

    python3 tests/data/gen_chat_golden.py [--models-dir DIR]
"""
import argparse
import json
import os
import sys

from jinja2.exceptions import TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment

HERE = os.path.dirname(os.path.abspath(__file__))

# The Gemma 3 template is read from the C++ source that embeds it, so the
# golden renderings are of exactly the text Atrium uses.
def _embedded_gemma3_template():
    src = open(os.path.join(HERE, "..", "..", "models", "tokenizer", "chat_template.cc")).read()
    begin = src.index('R"TPL(') + len('R"TPL(')
    return src[begin:src.index(')TPL"', begin)]


GEMMA3_TEMPLATE = _embedded_gemma3_template()


def m(role, content):
    return {"role": role, "content": content}


CONVERSATIONS = [
    [m("user", "Hello!")],
    [m("system", "You are a terse assistant."), m("user", "What is 2+2?")],
    [m("user", "Hi"), m("assistant", "Hello! How can I help?"), m("user", "Tell me a joke.")],
    [m("system", "Be kind."), m("user", "One"), m("assistant", "Two"), m("user", "Three"),
     m("assistant", "Four"), m("user", "Five")],
    [m("user", "  padded with spaces and newlines \n\n")],
    [m("user", "Unicode: 你好, مرحبا, שלום, नमस्ते, 😀👍🏽 👨‍👩‍👧, café")],
    [m("system", "\u3000system with ideographic space\u00a0"), m("user", "\tTabs\tinside\t")],
    [m("user", "Quotes ' \" and braces {{ }} {% %} <|im_start|> <start_of_turn>")],
    [m("user", "Line one\nLine two\n\nLine four")],
    [m("user", "")],
    [m("user", "Question?"), m("assistant", "Answer.")],
]

# Conversations Gemma 3's template refuses (raise_exception).
GEMMA_ERRORS = [
    [m("assistant", "I speak first")],
    [m("user", "a"), m("user", "b")],
]


# Small templates that exercise the Jinja subset; rendered with FEATURE_MESSAGES.
FEATURES = [
    "{% for m in messages %}{{ loop.index0 }}/{{ loop.index }}/{{ loop.revindex }}/{{ loop.revindex0 }}"
    "/{{ loop.length }}{% if loop.first %}F{% endif %}{% if loop.last %}L{% endif %};{% endfor %}",
    "{% for m in messages[1:] %}{{ m.role }}={{ m['content'] | length }} {% endfor %}|{{ messages[-1].content }}",
    "{{ messages[0]['content'][1:4] }}|{{ messages[0]['content'][-2:] }}|{{ messages[:2] | length }}",
    "{% set x = 'a' ~ 1 ~ true ~ none %}{{ x }}|{{ 7 % 3 }}|{{ -7 % 3 }}|{{ 7 // 2 }}|{{ 2 * 3 + 1 }}",
    "{{ 'b' in 'abc' }}{{ 'z' not in 'abc' }}{{ 'user' in ['user', 'x'] }}{{ 1 == 2 if false else 3 > 2 }}",
    "{{ x is defined }}{{ x is undefined }}{{ none is none }}{{ 'a' is string }}{{ 1 is number }}"
    "{{ messages is iterable }}{{ messages[0] is mapping }}{{ 'a' is not string }}",
    "{{ undefined_var }}|{{ '' or 'fallback' }}|{{ 'x' and 'y' }}|{{ not '' }}|{{ (1 if false) }}",
    "{% if messages | length > 2 %}many{% elif messages | length == 2 %}two{% else %}few{% endif %}",
    "{% for m in messages %}{% set r = m.role %}{{ r }}{% endfor %}[{{ r }}]",
    "A\n  {% if true %}\n    B\n  {% endif %}\n  C {# comment #}\n{{ 'D' }}  \n",
    "x  {%- if true -%}  y  {%- endif -%}  z {{- ' w ' -}} v\n{%+ if true %} plus{% endif +%}\nend",
    "{{ '  \t padded \u3000\u00a0' | trim }}|{{ 'é😀x' | length }}|{{ 'a' + \"b\" 'c' }}",
    "{% for c in 'añ😀' %}[{{ c }}]{% endfor %}{% for x in [1, 2, 3] %}{{ x * x }}{% endfor %}",
]
FEATURE_MESSAGES = [m("system", "Sys tem"), m("user", "héllo wörld"), m("assistant", "ok")]


def render(env, source, messages, add_generation_prompt, bos, eos):
    tpl = env.from_string(source)
    return tpl.render(messages=messages, add_generation_prompt=add_generation_prompt,
                      bos_token=bos, eos_token=eos)


def raise_exception(message):
    raise TemplateError(message)


def smollm2_template(models_dir):
    path = os.path.join(models_dir, "SmolLM2-135M-Instruct.Q4_1.gguf")
    if os.path.exists(path):
        import gguf
        reader = gguf.GGUFReader(path)
        field = reader.fields["tokenizer.chat_template"]
        return bytes(field.parts[-1]).decode("utf-8")
    with open(os.path.join(HERE, "chat", "smollm2.json"), encoding="utf-8") as f:
        return json.load(f)["source"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--models-dir", default=os.path.expanduser("~/.cache/atrium/models"))
    args = ap.parse_args()
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    env.globals["raise_exception"] = raise_exception

    templates = {
        "smollm2": (smollm2_template(args.models_dir), "<|im_start|>", "<|im_end|>", []),
        "gemma3": (GEMMA3_TEMPLATE, "<bos>", "<eos>", GEMMA_ERRORS),
    }
    os.makedirs(os.path.join(HERE, "chat"), exist_ok=True)
    feature_cases = []
    for source in FEATURES:
        feature_cases.append({"source": source, "expected": render(env, source, FEATURE_MESSAGES, True, "<s>", "</s>")})
    out = os.path.join(HERE, "chat", "features.json")
    with open(out, "w", encoding="utf-8") as f:
        json.dump({"generator": "tests/data/gen_chat_golden.py", "messages": FEATURE_MESSAGES,
                   "bos_token": "<s>", "eos_token": "</s>", "cases": feature_cases}, f, ensure_ascii=False, indent=1)
        f.write("\n")
    print(f"{out}: {len(feature_cases)} cases", file=sys.stderr)
    for name, (source, bos, eos, errors) in templates.items():
        cases = []
        for conv in CONVERSATIONS:
            for agp in (True, False):
                cases.append({"messages": conv, "add_generation_prompt": agp,
                              "expected": render(env, source, conv, agp, bos, eos)})
        for conv in errors:
            try:
                render(env, source, conv, True, bos, eos)
                raise SystemExit(f"{name}: expected an error for {conv}")
            except TemplateError as e:
                cases.append({"messages": conv, "add_generation_prompt": True, "error": str(e)})
        doc = {"generator": "tests/data/gen_chat_golden.py (jinja2 trim_blocks + lstrip_blocks)",
               "source": source, "bos_token": bos, "eos_token": eos, "cases": cases}
        out = os.path.join(HERE, "chat", name + ".json")
        with open(out, "w", encoding="utf-8") as f:
            json.dump(doc, f, ensure_ascii=False, indent=1)
            f.write("\n")
        print(f"{out}: {len(cases)} cases", file=sys.stderr)


if __name__ == "__main__":
    main()
