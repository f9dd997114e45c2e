"""`kbot users` and `kbot tokens`: the first admin account from the shell, roles, tokens."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from bot.cli import main as cli
from bot.wiring import Runtime
from knowledge.accounts import Accounts
from tests.conftest import make_settings


@pytest.fixture
def rt(tmp_path, monkeypatch) -> Runtime:
    runtime = Runtime(make_settings(tmp_path / "data"))
    monkeypatch.setattr(cli, "_runtime", runtime)
    monkeypatch.setenv("COLUMNS", "200")
    return runtime


def test_first_admin_roles_and_tokens(rt):
    runner = CliRunner()
    added = runner.invoke(cli.app, ["users", "add", "alice", "--admin", "--password-stdin"],
                          input="a long password\n")
    assert added.exit_code == 0 and "Added alice (admin)" in added.output
    accounts = Accounts(rt.store)
    assert accounts.authenticate("alice", "a long password").is_admin
    short = runner.invoke(cli.app, ["users", "add", "bob", "--password-stdin"], input="short\n")
    assert short.exit_code == 2 and "at least 10 characters" in short.output
    taken = runner.invoke(cli.app, ["users", "add", "alice", "--password-stdin"], input="another password\n")
    assert taken.exit_code == 2 and "already exists" in taken.output
    assert runner.invoke(cli.app, ["users", "set", "alice", "--scope", "hr", "--disable"]).exit_code == 0
    alice = accounts.by_username("alice")
    assert alice.scopes == ["hr"] and alice.disabled
    assert accounts.authenticate("alice", "a long password") is None  # disabled accounts cannot sign in
    made = runner.invoke(cli.app, ["tokens", "create", "alice", "--name", "ci"])
    token = made.stdout.strip().splitlines()[-1]
    assert made.exit_code == 0 and token.startswith("kbot_")
    listing = runner.invoke(cli.app, ["tokens", "list"])
    assert "ci" in listing.output and token not in listing.output
    [row] = accounts.tokens()
    assert runner.invoke(cli.app, ["tokens", "revoke", row.id]).exit_code == 0
    assert accounts.user_for_token(token) is None
    assert [a.action for a in accounts.audit_log()] == ["token.revoke", "token.create", "user.update", "user.add"]
