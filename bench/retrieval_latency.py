"""Retrieval latency at 10k and 100k chunks: vector-only vs hybrid (vector + BM25, fused).

    .venv/bin/python bench/retrieval_latency.py [--sizes 10000 100000] [--queries 200]

Chunks are synthetic (random unit vectors and random texts from a 5,000-word vocabulary, in two
scopes) so that 100k chunks load in minutes; queries are real: each one is embedded by the real
embedder, and the scope filter is on, as in serving. Target: vector p95 < 50 ms at 100k; hybrid
within 2x of vector-only at 10k.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench._common import machine, percentile  # noqa: E402


def build(index, n: int, rng: random.Random, vocab: list[str]) -> None:
    import numpy as np

    batch = 5000
    for start in range(0, n, batch):
        size = min(batch, n - start)
        vectors = np.random.default_rng(start).standard_normal((size, 384)).astype("float32")
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        rows: dict[str, list[int]] = {}
        for i in range(size):  # one chunk in ten is restricted
            rows.setdefault("default" if (start + i) % 10 else "restricted", []).append(i)
        for scope, picked in rows.items():
            ids = [f"doc{(start + i) // 20}-{start + i:07d}" for i in picked]
            metas = [{"scope": scope, "doc_id": f"doc{(start + i) // 20}", "position": (start + i) % 20,
                      "source": f"/synthetic/doc{(start + i) // 20}.md", "title": f"doc {(start + i) // 20}"}
                     for i in picked]
            docs = [" ".join(rng.choices(vocab, k=120)) for _ in picked]
            index.collections.get(scope, create=True).add(
                ids=ids, embeddings=vectors[picked].tolist(), documents=docs, metadatas=metas)
    index.bump()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10000, 100000])
    parser.add_argument("--queries", type=int, default=200)
    args = parser.parse_args()

    from bot.core.settings import Settings
    from knowledge.embedder import LocalEmbedder
    from knowledge.index import KnowledgeIndex, chroma_client
    from knowledge.models import embedder_dir

    rng = random.Random(7)
    vocab = [f"{''.join(rng.choices('abcdefghijklmnopqrstuvwxyz', k=rng.randint(3, 9)))}" for _ in range(5000)]
    embedder = LocalEmbedder(embedder_dir(None))
    queries = [" ".join(rng.choices(vocab, k=rng.randint(3, 8))) for _ in range(args.queries)]
    print(f"machine: {machine()}")
    print("| chunks | mode | p50 ms | p95 ms |")
    print("| --- | --- | --- | --- |")
    for n in args.sizes:
        with tempfile.TemporaryDirectory() as tmp:
            settings = Settings(_env_file=None, data_dir=Path(tmp))
            index = KnowledgeIndex(chroma_client(None, Path(tmp) / "chroma"), "bench", embedder, settings)
            t0 = time.perf_counter()
            build(index, n, rng, vocab)
            build_s = time.perf_counter() - t0
            index.keyword_search("warm", ["default"], 5)  # build BM25 outside the timed loop
            for hybrid in (False, True):
                settings.hybrid = hybrid
                for q in queries[:10]:
                    index.retrieve(q, ["default"], 5)  # warm-up
                times = []
                for q in queries:
                    embedder._cache.clear()  # every query pays for its embedding
                    t0 = time.perf_counter()
                    index.retrieve(q, ["default"], 5)
                    times.append((time.perf_counter() - t0) * 1000)
                mode = "hybrid" if hybrid else "vector"
                print(f"| {n:,} | {mode} | {percentile(times, 50):.1f} | {percentile(times, 95):.1f} |")
            print(f"(loaded {n:,} chunks in {build_s:.0f} s)", file=sys.stderr)


if __name__ == "__main__":
    main()
