"""The command line: ingest summary and exit codes, docs, forget, config masking, --help."""

from __future__ import annotations

import json
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


# --- one line and exit code 2 for configuration problems; masked URLs; unknown variables ----------------
@pytest.fixture
def clean_env(tmp_path, monkeypatch):
    """No KBOT_/Slack/Discord variables and no .env: the command sees only what the test sets."""
    import os

    for name in list(os.environ):
        if name.startswith(("KBOT_", "SLACK_", "DISCORD_")):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("KBOT_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setattr(cli, "_runtime", None)
    monkeypatch.setattr(cli, "_settings", None)
    monkeypatch.setenv("COLUMNS", "250")


def run_main(monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    monkeypatch.setattr("sys.argv", ["kbot", *args])
    with pytest.raises(SystemExit) as exit_info:
        cli.main()
    out, err = capsys.readouterr()
    return exit_info.value.code or 0, out, err


@pytest.mark.parametrize("command, needs", [("slack", "SLACK_BOT_TOKEN"), ("discord", "DISCORD_TOKEN")])
def test_missing_token_is_one_line_and_exit_2(clean_env, monkeypatch, capsys, command, needs):
    code, out, err = run_main(monkeypatch, capsys, command)
    assert code == 2
    assert err.strip().startswith("kbot: ") and needs in err and len(err.strip().splitlines()) == 1
    assert "Traceback" not in out + err


def test_bad_setting_is_one_line_and_exit_2(clean_env, monkeypatch, capsys):
    monkeypatch.setenv("KBOT_TOP_K", "many")
    code, _, err = run_main(monkeypatch, capsys, "docs")
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "KBOT_TOP_K" in err and "'many'" in err and "Traceback" not in err


def test_bad_schedule_is_a_config_error(tmp_path):
    from bot.core.errors import ConfigError
    from training.scheduler import TrainingScheduler

    settings = make_settings(tmp_path, train_schedule="0 3 * *")
    with pytest.raises(ConfigError, match="KBOT_TRAIN_SCHEDULE"):
        TrainingScheduler(settings, Runtime(settings).store, runner=lambda: 0)


def test_unknown_kbot_variables_warn_with_a_suggestion(clean_env, monkeypatch, capsys):
    monkeypatch.setenv("KBOT_TOPK", "3")
    monkeypatch.setenv("KBOT_LOG_FORMAT", "json")
    code, out, err = run_main(monkeypatch, capsys, "config")
    assert code == 0
    [warning] = [json.loads(line) for line in err.splitlines() if "KBOT_TOPK" in line]
    assert warning["level"] == "WARNING"
    assert warning["message"] == "unknown setting KBOT_TOPK is ignored; did you mean KBOT_TOP_K?"


def test_unknown_variables_in_the_env_file_warn_too(tmp_path):
    from bot.core.settings import unknown_variables

    env = tmp_path / ".env"
    env.write_text("KBOT_CHUNK_SIZ=80\nKBOT_TOP_K=3\nSLACK_BOT_TOKEN=x\n")
    assert unknown_variables({"KBOT_ZZZ_NOTHING": "1", "KBOT_TEST_PG_URL": "x"}, env) == [
        "unknown setting KBOT_CHUNK_SIZ is ignored; did you mean KBOT_CHUNK_SIZE?",
        "unknown setting KBOT_ZZZ_NOTHING is ignored (see `kbot config`)",
    ]


def test_config_masks_every_url_with_sqlalchemy_rendering(clean_env, monkeypatch, capsys):
    monkeypatch.setenv("KBOT_DATABASE_URL", "postgresql+psycopg2://kbot:p@ss@word@db:5432/kbot")
    monkeypatch.setenv("KBOT_OPENAI_BASE_URL", "https://svc:0penai-pw@llm.internal:8443/v1?api_key=k3y")
    monkeypatch.setenv("KBOT_CHROMA_URL", "http://chroma-user:chr0ma-pw@chroma:8000")
    monkeypatch.setenv("KBOT_OPENAI_API_KEY", "sk-abcdef")
    code, out, _ = run_main(monkeypatch, capsys, "config")
    assert code == 0
    for secret in ("p@ss", "ss@word", "0penai-pw", "k3y", "chr0ma-pw", "sk-abcdef"):
        assert secret not in out, secret
    assert "postgresql+psycopg2://kbot:***@db:5432/kbot" in out
    assert "https://svc:***@llm.internal:8443/v1?api_key=***" in out
    assert "http://chroma-user:***@chroma:8000" in out
