#!/usr/bin/env python3
"""Regenerates tests/data/tokenizer/<model>.json: llama.cpp's token ids for a
deterministic set of >= 500 strings, with and without parsing special tokens.

Needs llama-cpp-python (the reference, never linked into Atrium) and the real
model files (scripts/setup.sh links them into ~/.cache/atrium/models):

    python3 tests/data/gen_tokenizer_golden.py [--models-dir DIR]
"""
import argparse
import json
import os
import random
import sys

MODELS = {
    "smollm2": "SmolLM2-135M-Instruct.Q4_1.gguf",
    "gemma3": "gemma-3-270m-q4_k_m.gguf",
}

SPECIAL_TEXTS = [
    "<|im_start|>", "<|im_end|>", "<|endoftext|>", "<repo_name>", "<file_sep>",
    "<jupyter_code>", "<start_of_turn>", "<end_of_turn>", "<bos>", "<eos>", "<pad>",
    "<unk>", "<mask>", "[multimodal]", "<unused0>", "<unused42>", "<0x41>", "<0xFF>",
    "<start_of_image>", "<end_of_image>", "<|im_start", "im_end|>", "<start_of_turn",
    "<<|im_start|>>", "<end_of_turn><end_of_turn>", "</s>", "<s>",
]

SCRIPTS = {
    "latin": "The quick brown fox jumps over the lazy dog",
    "accents": "Ça déjà vu, naïve façade, São Paulo, Ærøskøbing, Łódź, Šťastný, İstanbul, ß",
    "greek": "Γαζέες καὶ μυρτιὲς δὲν θὰ βρῶ πιὰ στὸ χρυσαφὶ ξέφωτο",
    "cyrillic": "Съешь же ещё этих мягких французских булок, да выпей чаю",
    "armenian": "Բարեւ աշխարհ",
    "georgian": "გამარჯობა მსოფლიო",
    "hebrew": "שלום עולם, מה שלומך היום?",
    "arabic": "مرحبا بالعالم، كيف حالك اليوم؟ ١٢٣٤٥",
    "persian": "سلام دنیا ۱۲۳",
    "devanagari": "नमस्ते दुनिया, आप कैसे हैं? १२३४",
    "bengali": "ওহে বিশ্ব",
    "tamil": "வணக்கம் உலகம்",
    "thai": "สวัสดีชาวโลก ภาษาไทยไม่มีช่องว่างระหว่างคำ",
    "lao": "ສະບາຍດີ",
    "tibetan": "བཀྲ་ཤིས་བདེ་ལེགས།",
    "chinese": "你好，世界！我们今天学习中文。繁體字測試",
    "japanese": "こんにちは世界。カタカナとひらがな、漢字。ｶﾀｶﾅ",
    "korean": "안녕하세요 세계, 한국어 테스트입니다",
    "ethiopic": "ሰላም ለዓለም",
    "khmer": "សួស្តី​ពិភពលោក",
    "math": "∀x∈ℝ: x²≥0, ∑ᵢ aᵢ = ∫₀^∞ f(x)dx ≈ π·½ ≠ ∞ √2 ⅔ Ⅻ",
    "symbols": "©®™ € £ ¥ ₹ ₿ § ¶ † ‡ • … ‰ ← → ↑ ↓ ★ ☆ ♠ ♥ ✓ ✗",
    "emoji": "😀 😃 😄 👍 🎉 🚀 ❤️ 🔥 💯 🤖",
    "emoji_zwj": "👨‍👩‍👧‍👦 👩‍💻 🏳️‍🌈 🧑‍🤝‍🧑 👁️‍🗨️",
    "emoji_skin": "👋🏻 👋🏼 👋🏽 👋🏾 👋🏿 🤝🏽",
    "flags": "🇺🇸🇫🇷🇯🇵🇩🇪 🏴󠁧󠁢󠁳󠁣󠁴󠁿",
    "combining": "e\u0301 a\u0308 n\u0303 Z\u0351\u0353\u0324a\u036Bl\u0350g\u0359o \u0915\u094D\u0937",
    "fullwidth": "ＡＢＣ１２３！？",
    "nbsp": "a\u00A0b\u2003c\u3000d\u200Be\u2028f\u0085g",
}

FIXED = [
    "", " ", "  ", "   ", "\t", "\n", "\r\n", "\n\n", "\n\n\n", " \n ", "\t\t\n  \n",
    "a", "A", "0", "00", "123", "1234", "12345", "1234567890", "3.14159265358979",
    "-42", "+1-800-555-0199", "1,000,000", "0x7fffffff", "1e-9", "2024-01-31T12:34:56Z",
    "99999999999999999999999999999999",
    "Hello", "Hello world", " Hello world", "Hello world ", "Hello  world", "Hello\tworld",
    "Hello\nworld", "Hello\n\nworld", "hello WORLD HeLLo", "HELLO WORLD",
    "it's", "it'S", "don't", "DON'T", "we're", "they've", "I'm", "you'll", "he'd",
    "'s 't 're 've 'm 'll 'd", "rock 'n' roll", "O'Neil's", "''quoted''",
    "!!!", "???", "...", "?!?!", "---", "___", "***", "###", "((()))", "[[{{<>}}]]",
    "a.b.c", "e.g.,", "i.e.", "Mr. Smith", "end.", "(parenthetical)", "\"quoted\"",
    "«guillemets» „Anführung“ ‚single‘ “curly” ‘quotes’", "—em dash– en dash‐hyphen",
    "https://example.com/path?query=1&x=y#frag", "user@example.com", "C:\\Windows\\System32",
    "/usr/local/bin/python3", "~/.cache/atrium/models", "#hashtag @mention $100 50% 3*4=12",
    "def foo(x):\n    return x + 1\n", "int main() {\n\treturn 0;\n}",
    "for (int i = 0; i < n; ++i) { sum += a[i]; }", "if x == 1 and y != 2 or not z:",
    "<html><body><p>Hi</p></body></html>", "<div class=\"a\">text</div>", "<br/>", "</s>",
    "{\"key\": [1, 2, 3], \"nested\": {\"a\": null}}", "SELECT * FROM t WHERE id = 42;",
    "    indented four", "\tindented tab", "trailing spaces   ", "   leading spaces",
    "mixed \t \n \r\n whitespace \u3000 end", "a\u00A0b", "x\u2009y", " \u00A0 ",
    "▁already▁escaped", "▁", "▁▁", "Ġ", "ĠĠ", "Ċ", "<0x0A>",
]

FRAGMENTS = (
    [v for v in SCRIPTS.values()]
    + ["the", "of", "and", " ", "  ", "\n", "\t", ", ", ". ", "!", "?", "'s", "'t", "'re",
       "123", "4567", "3.5", "_", "-", "/", "()", "{}", "=>", "::", "->", "//", "#", "@", "$",
       "%", "^", "&", "*", "~", "`", "|", "\\", "\"", "'"]
)


# Invalid UTF-8 (stored as hex): llama.cpp reads each bad byte as U+FFFD.
INVALID_UTF8 = [b"\xff", b"a\x80b", b"\xc3", b"\xe2\x82", b"x\xf0\x9f\x98", b"\xed\xa0\x80",
                b"\xc0\xaf", b"\xf8\x88\x80\x80\x80", b"ok\xff\xfe end", b"\xc3\xa9\xa9 caf\xc3",
                b"<|im_start|>\xff<|im_end|>", b"<start_of_turn>\x80\x80 hi"]


def words_of(text):
    return [w for w in text.replace("\n", " ").split(" ") if w]


def make_strings():
    rng = random.Random(20240531)
    out = list(FIXED)
    out += list(SCRIPTS.values())
    out += SPECIAL_TEXTS
    # Special-token text in context, parsed and as plain text.
    for s in SPECIAL_TEXTS:
        out.append("<|im_start|>user\n" + s + " hi<|im_end|>\n")
        out.append("x" + s + "y")
    out += [
        "<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>user\nHi!<|im_end|>\n<|im_start|>assistant\n",
        "<bos><start_of_turn>user\nHello<end_of_turn>\n<start_of_turn>model\n",
        "<start_of_turn>user\n  spaced  <end_of_turn>\n\n\n<start_of_turn>model\n\t\tcode",
        "text<eos>more<pad><pad>",
    ]
    # Whitespace runs of every kind and length.
    for ch in [" ", "\t", "\n", "\r\n", " \n", "\n ", "\t ", "\u3000"]:
        for n in [1, 2, 3, 5, 8, 17, 33]:
            out.append("a" + ch * n + "b")
            out.append(ch * n)
    # Digits and numbers.
    for n in [1, 2, 3, 4, 5, 6, 7, 9, 13, 21]:
        out.append("".join(rng.choice("0123456789") for _ in range(n)))
        out.append("x" + "".join(rng.choice("0123456789") for _ in range(n)) + " y")
    # Random word mixes within and across scripts.
    for name, text in SCRIPTS.items():
        ws = words_of(text)
        for _ in range(4):
            k = rng.randint(1, max(1, len(ws)))
            out.append(" ".join(rng.choice(ws) for _ in range(k)))
    while len(out) < 560:
        k = rng.randint(1, 12)
        parts = []
        for _ in range(k):
            frag = rng.choice(FRAGMENTS)
            if len(frag) > 12 and rng.random() < 0.7:
                start = rng.randrange(len(frag))
                frag = frag[start:start + rng.randint(1, 12)]
            parts.append(frag)
        out.append("".join(parts))
    # Random code points from many blocks, including unassigned ones.
    blocks = [(0x20, 0x7E), (0xA0, 0x24F), (0x370, 0x52F), (0x590, 0x6FF), (0x900, 0xDFF),
              (0xE00, 0xEFF), (0x1100, 0x11FF), (0x2000, 0x2BFF), (0x3000, 0x30FF),
              (0x4E00, 0x9FFF), (0xAC00, 0xD7A3), (0xFF00, 0xFFEF), (0x1F300, 0x1FAFF),
              (0x10000, 0x1007F), (0x20000, 0x2A6DF), (0xE0000, 0xE007F)]
    for _ in range(60):
        n = rng.randint(1, 24)
        chars = []
        for _ in range(n):
            lo, hi = rng.choice(blocks)
            c = rng.randint(lo, hi)
            if 0xD800 <= c <= 0xDFFF:
                c = 0x41
            chars.append(chr(c))
        out.append("".join(chars))
    # A few long strings.
    long_parts = list(SCRIPTS.values()) + FIXED[40:80]
    for n in [50, 200]:
        out.append(" ".join(rng.choice(long_parts) for _ in range(n)))
    out.append("a" * 3000)
    out.append(" " * 500 + "x")
    out.append("\n" * 300)
    out.append("😀" * 400)
    # Deduplicate, keep order.
    seen = set()
    uniq = []
    for s in out:
        if s not in seen:
            seen.add(s)
            uniq.append(s)
    return uniq


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--models-dir", default=os.path.expanduser("~/.cache/atrium/models"))
    ap.add_argument("--out-dir", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "tokenizer"))
    args = ap.parse_args()
    import llama_cpp

    strings = make_strings()
    os.makedirs(args.out_dir, exist_ok=True)
    for name, file in MODELS.items():
        path = os.path.join(args.models_dir, file)
        llm = llama_cpp.Llama(model_path=path, vocab_only=True, verbose=False)
        cases = []
        for s in strings:
            b = s.encode("utf-8")
            cases.append({
                "text": s,
                "special": llm.tokenize(b, add_bos=False, special=True),
                "plain": llm.tokenize(b, add_bos=False, special=False),
            })
        for b in INVALID_UTF8:
            cases.append({
                "hex": b.hex(),
                "special": llm.tokenize(b, add_bos=False, special=True),
                "plain": llm.tokenize(b, add_bos=False, special=False),
            })
        doc = {
            "model": file,
            "generator": "tests/data/gen_tokenizer_golden.py, llama-cpp-python " + llama_cpp.__version__,
            # add_special=True on one string: shows whether BOS/EOS are added.
            "with_special": {"text": "Hello world",
                             "ids": llm.tokenize(b"Hello world", add_bos=True, special=True)},
            "cases": cases,
        }
        out = os.path.join(args.out_dir, name + ".json")
        with open(out, "w", encoding="utf-8") as f:
            json.dump(doc, f, ensure_ascii=False, separators=(",", ":"))
            f.write("\n")
        print(f"{out}: {len(cases)} strings, {os.path.getsize(out)} bytes", file=sys.stderr)


if __name__ == "__main__":
    main()
