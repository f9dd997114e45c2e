"""Shared fixtures. Real models load once per session; the converted LM is cached in
.cache/test-models (git-ignored) so later runs skip the ~30 s GGUF conversion."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from bot.core.settings import Settings  # noqa: E402
from knowledge.store import Store  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
MODEL_CACHE = ROOT / ".cache" / "test-models"
PG_ADMIN_URL = os.environ.get("KBOT_TEST_PG_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres")


def make_settings(data_dir: Path, **overrides) -> Settings:
    """Settings isolated from the developer's environment and .env file."""
    return Settings(_env_file=None, data_dir=data_dir, **overrides)


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(f"sqlite:///{tmp_path / 'kbot.db'}")


@pytest.fixture
def pg_url():
    """A fresh PostgreSQL database for one test, dropped afterwards."""
    from sqlalchemy import create_engine, text

    name = f"kbot_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # a missing server is an environment problem: say how to fix it
        pytest.fail(f"PostgreSQL not reachable at {PG_ADMIN_URL} ({exc}); start it with "
                    "`pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start`")
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    yield url
    with admin.connect() as conn:
        conn.execute(text(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"))
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
    admin.dispose()


@pytest.fixture(scope="session")
def embedder():
    from knowledge.embedder import LocalEmbedder
    from knowledge.models import embedder_dir

    return LocalEmbedder(embedder_dir(None))


@pytest.fixture(scope="session")
def lm_dir() -> Path:
    from knowledge.models import lm_dir as resolve

    return resolve(None, MODEL_CACHE)


@pytest.fixture(scope="session")
def generator(lm_dir):
    from knowledge.generator import LocalGenerator

    return LocalGenerator(lm_dir, max_new_tokens=64)


@pytest.fixture(scope="session")
def sample_runtime(tmp_path_factory, embedder, generator):
    """A Runtime over the sample corpus (real embedder, Chroma, BM25 and LM), ingested once."""
    from bot.wiring import Runtime

    data = tmp_path_factory.mktemp("sample")
    rt = Runtime(make_settings(data), embedder=embedder, generator=generator)
    report = rt.ingestor.ingest_paths([EXAMPLES / "docs"])
    assert report.ok, report.failed
    report = rt.ingestor.ingest_paths([EXAMPLES / "docs-restricted"], scope="leadership")
    assert report.ok, report.failed
    return rt
