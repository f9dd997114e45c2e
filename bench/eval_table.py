"""The retrieval-quality table of docs/benchmarks.md: one `kbot eval` run per configuration over the
sample corpus, each printed with the exact command that reproduces its row.

    .venv/bin/python bench/eval_table.py [--file examples/questions.jsonl] [--data-dir DIR]

With no --data-dir, the sample corpus is ingested into a temp folder first (`kbot ingest`).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
KBOT = str(Path(sys.executable).with_name("kbot"))
CONFIGS = [
    ("vector only", {"KBOT_HYBRID": "false", "KBOT_RERANKER": "none", "KBOT_EXPAND_NEIGHBORS": "0"}),
    ("hybrid (vector + BM25, RRF)", {"KBOT_HYBRID": "true", "KBOT_RERANKER": "none", "KBOT_EXPAND_NEIGHBORS": "0"}),
    ("hybrid + expansion", {"KBOT_HYBRID": "true", "KBOT_RERANKER": "none", "KBOT_EXPAND_NEIGHBORS": "1"}),
    ("hybrid + rerank (default)", {"KBOT_HYBRID": "true", "KBOT_RERANKER": "lexical", "KBOT_EXPAND_NEIGHBORS": "0"}),
    ("hybrid + expansion + rerank", {"KBOT_HYBRID": "true", "KBOT_RERANKER": "lexical",
                                     "KBOT_EXPAND_NEIGHBORS": "1"}),
]


def fmt(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--file", type=Path, default=ROOT / "examples" / "questions.jsonl")
    parser.add_argument("--data-dir", type=Path)
    parser.add_argument("--only", type=int, nargs="*", help="Row numbers to run (1-based).")
    args = parser.parse_args()
    data = args.data_dir or Path(tempfile.mkdtemp(prefix="kbot-eval-"))
    env = {**os.environ, "KBOT_DATA_DIR": str(data), "HF_HUB_OFFLINE": "1"}
    if not args.data_dir:
        subprocess.run([KBOT, "ingest", str(ROOT / "examples" / "docs")], env=env, check=True,
                       stdout=subprocess.DEVNULL)
    print("| configuration | hit@1 | hit@5 | MRR | answer F1 | fact in answer | generated / extractive / declined "
          "| abstention P / R | latency p50 / p95 | command |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for n, (name, overrides) in enumerate(CONFIGS, 1):
        if args.only and n not in args.only:
            continue
        cmd = [KBOT, "eval", str(args.file), "--json", "--k", "5"]
        out = subprocess.run(cmd, env={**env, **overrides}, check=True, capture_output=True, text=True).stdout
        s = json.loads(out)["summary"]
        m = s["modes"]
        shown = " ".join(f"{k}={v}" for k, v in overrides.items())
        print(f"| {name} | {fmt(s['hit@1'])} | {fmt(s['hit@k'])} | {fmt(s['mrr'])} | {fmt(s['f1'])} | "
              f"{fmt(s['fact_rate'])} | {m['generated']['share']:.0%} / {m['extractive']['share']:.0%} / "
              f"{m['declined']['share']:.0%} | {fmt(s['abstention_precision'])} / {fmt(s['abstention_recall'])} | "
              f"{s['latency_p50_ms']:.0f} / {s['latency_p95_ms']:.0f} ms | "
              f"`{shown} kbot eval {args.file.relative_to(ROOT) if args.file.is_relative_to(ROOT) else args.file} "
              f"--k 5` |", flush=True)


if __name__ == "__main__":
    main()
