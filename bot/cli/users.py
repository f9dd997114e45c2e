"""`kbot users add|list|set|passwd` and `kbot tokens create|list|revoke`: accounts for the web app
when sign-in is local (and for admins and API tokens under OIDC too). Every change is audited as
actor "cli".

Registered on the main typer app by bot/cli/main.py: `register(app, get_runtime)`.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from bot.core.errors import InputError, InvalidScope, StoreError
from bot.wiring import Runtime

console = Console()
err = Console(stderr=True)


def register(app: typer.Typer, get_runtime: Callable[[], Runtime]) -> None:
    users = typer.Typer(help="Accounts of the web app (sign-in, roles, granted scopes).", no_args_is_help=True)
    tokens = typer.Typer(help="API tokens for scripts (Authorization: Bearer kbot_...).", no_args_is_help=True)
    app.add_typer(users, name="users")
    app.add_typer(tokens, name="tokens")

    def accounts():  # noqa: ANN202
        from knowledge.accounts import Accounts

        return Accounts(get_runtime().store)

    def scopes_of(values: list[str] | None) -> list[str]:
        from bot.channels.shared import parse_scopes

        return parse_scopes(" ".join(values)) if values else []

    def read_password(stdin: bool) -> str:
        if stdin:
            return sys.stdin.readline().rstrip("\n")
        return typer.prompt("Password (10+ characters)", hide_input=True, confirmation_prompt=True)

    def fail(exc: Exception) -> None:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None

    @users.command("add")
    def add(
        name: Annotated[str, typer.Argument(help="User name to sign in with.")],
        admin: Annotated[bool, typer.Option("--admin", help="Give the admin role (the console).")] = False,
        scope: Annotated[list[str] | None, typer.Option(help="Extra scope this person may read (repeatable).")]
        = None,
        password_stdin: Annotated[bool, typer.Option("--password-stdin", help="Read the password from stdin.")]
        = False,
    ) -> None:
        """Create a local account (the first admin: `kbot users add alice --admin`)."""
        try:
            row = accounts().add_local(name, read_password(password_stdin), role="admin" if admin else "user",
                                       scopes=scopes_of(scope))
        except (InputError, InvalidScope) as exc:
            fail(exc)
            return
        accounts().audit("cli", "user.add", row.username, f"role={row.role}")
        console.print(f"Added {row.username} ({row.role}).")

    @users.command("list")
    def list_users() -> None:
        """Accounts with their role, scopes and last sign-in."""
        rows = accounts().list()
        table = Table(title=f"{len(rows)} users")
        for col in ("user", "via", "role", "granted scopes", "IdP scopes", "status", "last sign-in"):
            table.add_column(col)
        for u in rows:
            table.add_row(u.username, u.provider, "admin" if u.is_admin else "user", ", ".join(u.scopes or []),
                          ", ".join(u.idp_scopes or []), "disabled" if u.disabled else "active",
                          f"{u.last_login_at:%Y-%m-%d %H:%M}" if u.last_login_at else "never")
        console.print(table)

    @users.command("set")
    def set_user(
        name: Annotated[str, typer.Argument(help="User name.")],
        role: Annotated[str | None, typer.Option(help="user or admin.")] = None,
        scope: Annotated[list[str] | None, typer.Option(help="Granted scopes (replaces them; repeatable).")]
        = None,
        disable: Annotated[bool | None, typer.Option("--disable/--enable", help="Lock or unlock the account.")]
        = None,
    ) -> None:
        """Change a user's role, granted scopes or status."""
        acc = accounts()
        row = acc.by_username(name)
        if row is None:
            fail(StoreError(f"no user named {name!r} (see `kbot users list`)"))
            return
        fields: dict = {}
        if role is not None:
            fields["role"] = role
        if scope is not None:
            fields["scopes"] = scopes_of(scope)
        if disable is not None:
            fields["disabled"] = disable
        try:
            row = acc.update(row.id, **fields)
        except (InputError, InvalidScope) as exc:
            fail(exc)
            return
        acc.audit("cli", "user.update", row.username, ", ".join(f"{k}={v}" for k, v in fields.items()))
        console.print(f"Saved {row.username}.")

    @users.command("passwd")
    def passwd(name: Annotated[str, typer.Argument(help="User name.")],
               password_stdin: Annotated[bool, typer.Option("--password-stdin")] = False) -> None:
        """Set a local account's password."""
        acc = accounts()
        row = acc.by_username(name)
        if row is None or row.provider != "local":
            fail(StoreError(f"no local user named {name!r}"))
            return
        try:
            acc.update(row.id, password=read_password(password_stdin))
        except InputError as exc:
            fail(exc)
        acc.audit("cli", "user.password", row.username)
        console.print(f"Password of {row.username} changed.")

    @tokens.command("create")
    def create(user: Annotated[str, typer.Argument(help="The user the token acts as.")],
               name: Annotated[str, typer.Option(help="What the token is for.")] = "script") -> None:
        """Create an API token; it is printed once."""
        acc = accounts()
        row = acc.by_username(user)
        if row is None:
            fail(StoreError(f"no user named {user!r}"))
            return
        token_row, plain = acc.create_token(row.id, name)
        acc.audit("cli", "token.create", f"{row.username}:{token_row.id}", name)
        err.print(f"Token {token_row.id} for {row.username} (shown once):")
        print(plain)

    @tokens.command("list")
    def list_tokens() -> None:
        """API tokens (never their value)."""
        acc = accounts()
        names = {u.id: u.username for u in acc.list()}
        table = Table(title="API tokens")
        for col in ("id", "user", "name", "starts with", "created", "last used", "revoked"):
            table.add_column(col)
        for t in acc.tokens():
            table.add_row(t.id, names.get(t.user_id, t.user_id), t.name, t.hint + "…", f"{t.created_at:%Y-%m-%d}",
                          f"{t.last_used_at:%Y-%m-%d %H:%M}" if t.last_used_at else "never",
                          f"{t.revoked_at:%Y-%m-%d}" if t.revoked_at else "")
        console.print(table)

    @tokens.command("revoke")
    def revoke(token_id: Annotated[str, typer.Argument(help="Token id from `kbot tokens list`.")]) -> None:
        """Revoke an API token at once."""
        acc = accounts()
        try:
            row = acc.revoke_token(token_id)
        except StoreError as exc:
            fail(exc)
            return
        acc.audit("cli", "token.revoke", f"{row.user_id}:{row.id}", row.name)
        console.print(f"Revoked {row.name!r}.")
