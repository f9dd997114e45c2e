"""Answer latency of the local LM: time to first token, prefill and decode tokens/s, with a
realistic RAG prompt (about 500 prompt tokens), in bf16 (where the CPU has it) and fp32.

    .venv/bin/python bench/answer_latency.py [--runs 3] [--new-tokens 64]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench._common import machine  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def rag_prompt(target_tokens: int, count) -> list[dict]:
    from bot.engine.prompt import SYSTEM_PROMPT

    sentences = []
    for path in sorted((ROOT / "examples" / "docs").rglob("*.md")):
        sentences += [s.strip() for s in path.read_text().split(".") if len(s.split()) > 6]
    lines, n = [], 0
    while count("\n".join(lines)) < target_tokens and n < len(sentences):
        lines.append(f"[{len(lines) + 1}] {sentences[n]}.")
        n += 1
    user = "Sources:\n" + "\n".join(lines) + "\n\nQuestion: How do I connect to the VPN from home?"
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": user}]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--cache", type=Path, default=ROOT / ".cache" / "test-models")
    args = parser.parse_args()

    from knowledge.generator import LocalGenerator, cpu_has_bf16
    from knowledge.models import lm_dir

    model_dir = lm_dir(None, args.cache or Path(tempfile.mkdtemp()))
    print(f"machine: {machine()}, native bf16: {cpu_has_bf16()}")
    print("| dtype | prompt tokens | time to first token | prefill tok/s | decode tok/s |")
    print("| --- | --- | --- | --- | --- |")
    for dtype in (["bfloat16"] if cpu_has_bf16() else []) + ["float32"]:
        gen = LocalGenerator(model_dir, dtype=dtype, max_new_tokens=args.new_tokens, repetition_penalty=1.2)
        messages = rag_prompt(500, gen.count_tokens)
        prompt_tokens = gen.count_tokens(gen.prompt_text(messages))
        ttft, decode = [], []
        list(gen.generate(messages))  # warm-up
        for _ in range(args.runs):
            t0 = time.perf_counter()
            first, pieces = None, []
            for piece in gen.generate(messages):
                first = first or time.perf_counter()
                pieces.append(piece)
            end = time.perf_counter()
            new_tokens = gen.count_tokens("".join(pieces))
            ttft.append(first - t0)
            decode.append(max(new_tokens - 1, 1) / max(end - first, 1e-6))
        t = statistics.median(ttft)
        print(f"| {dtype} | {prompt_tokens} | {t * 1000:.0f} ms | {prompt_tokens / t:.0f} | "
              f"{statistics.median(decode):.1f} |")


if __name__ == "__main__":
    main()
