"""The command line: ingest summary and exit codes, docs, forget, config masking, --help."""

from __future__ import annotations

import shutil

import pytest
from typer.testing import CliRunner

from bot.cli import main as cli
from bot.wiring import Runtime
from tests.conftest import EXAMPLES, make_settings


@pytest.fixture
def rt(tmp_path, embedder, monkeypatch) -> Runtime:
    runtime = Runtime(make_settings(tmp_path / "data"), embedder=embedder)
    monkeypatch.setattr(cli, "_runtime", runtime)
    monkeypatch.setenv("COLUMNS", "250")  # rich tables would wrap long paths
    return runtime


def test_ingest_docs_forget(rt, tmp_path):
    folder = tmp_path / "docs"
    folder.mkdir()
    shutil.copy(EXAMPLES / "docs" / "it" / "wifi.md", folder)
    (folder / "broken.pdf").write_bytes(b"%PDF-1.4 not really")
    runner = CliRunner()
    result = runner.invoke(cli.app, ["ingest", str(folder), "--scope", "it"])
    assert result.exit_code == 1  # one file failed
    assert "1 added" in result.output and "1 failed" in result.output and "broken.pdf" in result.output
    listing = runner.invoke(cli.app, ["docs"])
    assert listing.exit_code == 0 and "wifi.md" in listing.output and "it" in listing.output
    source = str((folder / "wifi.md").resolve())
    assert runner.invoke(cli.app, ["forget", source]).exit_code == 0
    missing = runner.invoke(cli.app, ["forget", source])
    assert missing.exit_code == 2 and "No document" in missing.output
    (folder / "broken.pdf").unlink()
    again = runner.invoke(cli.app, ["ingest", str(folder)])
    assert again.exit_code == 0


def test_config_masks_secrets(tmp_path, monkeypatch):
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-very-secret")
    monkeypatch.setenv("KBOT_DATABASE_URL", "postgresql+psycopg2://kbot:hunter2@db:5432/kbot")
    runtime = Runtime(make_settings(tmp_path))
    monkeypatch.setattr(cli, "_runtime", runtime)
    result = CliRunner().invoke(cli.app, ["config"], terminal_width=200)
    assert result.exit_code == 0
    assert "xoxb-very-secret" not in result.output and "hunter2" not in result.output
    assert "***" in result.output and "db:5432/kbot" in result.output


def test_help_explains_every_command():
    result = CliRunner().invoke(cli.app, ["--help"], terminal_width=200)
    for command in ("ingest", "docs", "forget", "ask", "chat", "serve", "eval", "config", "slack", "discord", "train",
                    "adapters", "feedback"):
        assert command in result.output
