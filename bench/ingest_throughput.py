"""Ingest throughput vs bare sentence-transformers encoding of the same chunks, in the same run.

    .venv/bin/python bench/ingest_throughput.py [--copies 4]

The sample corpus is copied N times (so the run is long enough to time) into a temp folder and
ingested into a fresh data dir with the real pipeline (read, chunk, embed, Chroma upsert, store).
Then the exact texts the pipeline embedded are encoded with bare SentenceTransformer.encode at
the same batch size. Target: pipeline chunks/s >= 0.85 x bare chunks/s.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench._common import machine  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--copies", type=int, default=4)
    args = parser.parse_args()

    from llama_index.core.schema import MetadataMode, TextNode
    from sentence_transformers import SentenceTransformer

    from bot.core.settings import Settings
    from bot.wiring import Runtime
    from knowledge.models import embedder_dir

    root = Path(__file__).resolve().parents[1]
    work = Path(tempfile.mkdtemp(prefix="kbot-bench-"))
    corpus = work / "corpus"
    for i in range(args.copies):
        shutil.copytree(root / "examples" / "docs", corpus / f"copy{i}")
    rt = Runtime(Settings(_env_file=None, data_dir=work / "data"))
    _ = rt.ingestor  # load the embedder and open Chroma before timing
    rt.embedder.embed(["warm up"])

    t0 = time.perf_counter()
    report = rt.ingestor.ingest_paths([corpus])
    pipeline_s = time.perf_counter() - t0
    chunks = report.chunks_embedded

    # The exact strings the pipeline embedded: chunk text plus the title/heading metadata.
    got = rt.index.collections.get_all(["documents", "metadatas"])
    texts = [TextNode(text=d, metadata={"title": m.get("title", ""), "heading": m.get("heading", "")})
             .get_content(metadata_mode=MetadataMode.EMBED) for d, m in zip(got["documents"], got["metadatas"],
                                                                          strict=True)]
    model = SentenceTransformer(str(embedder_dir(None)), device="cpu")
    bare = []
    for _ in range(2):
        t0 = time.perf_counter()
        model.encode(texts, batch_size=rt.settings.embed_batch_size, normalize_embeddings=True)
        bare.append(time.perf_counter() - t0)
    bare_s = min(bare)
    pipe_rate, bare_rate = chunks / pipeline_s, len(texts) / bare_s
    print(f"machine: {machine()}")
    print(f"files: {len(report.added)}, chunks: {chunks}, failed: {len(report.failed)}")
    print(f"pipeline: {pipeline_s:.1f} s = {pipe_rate:.1f} chunks/s (read + chunk + embed + Chroma + store)")
    print(f"bare sentence-transformers: {bare_s:.1f} s = {bare_rate:.1f} chunks/s (best of 2)")
    print(f"ratio: {pipe_rate / bare_rate:.2f} (target >= 0.85)")
    t0 = time.perf_counter()
    again = rt.ingestor.ingest_paths([corpus])
    print(f"re-ingest unchanged: {again.chunks_embedded} chunks embedded, {time.perf_counter() - t0:.2f} s")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
