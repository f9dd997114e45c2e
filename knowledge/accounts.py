"""People, API tokens and the audit log, in the relational store (tables of migration 0002).

A user is a local account (password hashed with Argon2id) or a person who signed in through the
company's OpenID Connect provider (provider "oidc", keyed by the IdP's `sub`). Their role and the
scopes an admin granted live here; the scopes their IdP groups grant are refreshed at each sign-in.
API tokens are random strings shown once; only their SHA-256 is stored (they carry 256 bits of
entropy, so a slow hash adds nothing). Every admin action is one row of `audit_log`.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import JSON, Boolean, DateTime, ForeignKey, Integer, String, Text, UniqueConstraint, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, mapped_column

from bot.core.errors import InputError, StoreError
from bot.core.types import new_id
from knowledge.store import Base, Store, utcnow

ROLES = ("user", "admin")
TOKEN_PREFIX = "kbot_"
_hasher = PasswordHasher()
# Verifying against this when the account does not exist costs the same time as a real check, so the
# sign-in form does not tell which user names exist.
_DUMMY_HASH = _hasher.hash(secrets.token_hex(16))


class UserRow(Base):
    __tablename__ = "users"
    __table_args__ = (UniqueConstraint("provider", "subject"),)
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    provider: Mapped[str] = mapped_column(String(16), default="local")  # local | oidc
    subject: Mapped[str] = mapped_column(String(255))  # the user name (local) or the IdP's sub (oidc)
    username: Mapped[str] = mapped_column(String(255), unique=True)
    display_name: Mapped[str] = mapped_column(String(255), default="")
    email: Mapped[str] = mapped_column(String(255), default="")
    password_hash: Mapped[str | None] = mapped_column(String(255), nullable=True)
    role: Mapped[str] = mapped_column(String(16), default="user")  # user | admin
    scopes: Mapped[list[Any]] = mapped_column(JSON, default=list)  # granted by an admin
    idp_scopes: Mapped[list[Any]] = mapped_column(JSON, default=list)  # from IdP groups at the last sign-in
    idp_admin: Mapped[bool] = mapped_column(Boolean, default=False)  # in an admin group at the last sign-in
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)

    @property
    def is_admin(self) -> bool:
        return self.role == "admin" or bool(self.idp_admin)


class ApiTokenRow(Base):
    __tablename__ = "api_tokens"
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(128), default="")
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    hint: Mapped[str] = mapped_column(String(16), default="")  # the first characters, to tell tokens apart
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)


class AuditRow(Base):
    __tablename__ = "audit_log"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(255))  # user name (or "cli" for the shell)
    action: Mapped[str] = mapped_column(String(64))  # e.g. document.upload, adapter.promote
    target: Mapped[str] = mapped_column(String(2048), default="")
    detail: Mapped[str] = mapped_column(Text, default="")
    address: Mapped[str] = mapped_column(String(64), default="")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def check_password_strength(password: str) -> None:
    if len(password) < 10:
        raise InputError("Passwords need at least 10 characters.")


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Accounts:
    """Reads and writes of users, tokens and the audit log through a Store's sessions."""

    def __init__(self, store: Store):
        self.store = store

    # --- users ---------------------------------------------------------------------------------
    def add_local(self, username: str, password: str, *, role: str = "user", scopes: list[str] | None = None,
                  display_name: str = "") -> UserRow:
        """A local account; InputError when the name is taken or the password too short."""
        username = username.strip()
        if not username or len(username) > 255:
            raise InputError("Give a user name of 1 to 255 characters.")
        if role not in ROLES:
            raise InputError(f"Unknown role {role!r}: use user or admin.")
        check_password_strength(password)
        row = UserRow(provider="local", subject=username, username=username, display_name=display_name or username,
                      password_hash=hash_password(password), role=role, scopes=list(scopes or []))
        try:
            self.store._retry(lambda: self._add(row))
        except IntegrityError as exc:
            raise InputError(f"A user named {username!r} already exists.") from exc
        return row

    def _add(self, row: Any) -> None:
        with self.store.session() as s:
            s.add(row)

    def authenticate(self, username: str, password: str) -> UserRow | None:
        """The enabled local user with this name and password, else None (in constant-ish time)."""
        row = self.by_username(username.strip())
        stored = row.password_hash if row is not None and row.provider == "local" else None
        try:
            _hasher.verify(stored or _DUMMY_HASH, password)
        except (VerificationError, InvalidHashError):
            return None
        if row is None or stored is None or row.disabled:
            return None
        if _hasher.check_needs_rehash(stored):
            self.update(row.id, password_hash=hash_password(password))
        self.update(row.id, last_login_at=utcnow())
        return row

    def upsert_oidc(self, subject: str, *, username: str, email: str, display_name: str,
                    idp_scopes: list[str], idp_admin: bool) -> UserRow:
        """The user of an OIDC sign-in, created on first sign-in; group-derived facts refreshed."""

        def write() -> UserRow:
            with self.store.session() as s:
                row = s.scalar(select(UserRow).where(UserRow.provider == "oidc", UserRow.subject == subject))
                if row is None:
                    name = username
                    if s.scalar(select(UserRow).where(UserRow.username == name)) is not None:
                        name = f"{username}#{subject[:12]}"  # a local account already has that name
                    row = UserRow(provider="oidc", subject=subject, username=name, role="user", scopes=[])
                    s.add(row)
                row.email, row.display_name = email, display_name or username
                row.idp_scopes, row.idp_admin = list(idp_scopes), idp_admin
                row.last_login_at = utcnow()
                s.flush()
                return row

        return self.store._retry(write)

    def get(self, user_id: str) -> UserRow | None:
        with self.store.session() as s:
            return s.get(UserRow, user_id)

    def by_username(self, username: str) -> UserRow | None:
        with self.store.session() as s:
            return s.scalar(select(UserRow).where(UserRow.username == username))

    def list(self) -> list[UserRow]:
        with self.store.session() as s:
            return list(s.scalars(select(UserRow).order_by(UserRow.username)))

    def count(self) -> int:
        return len(self.list())

    def update(self, user_id: str, **fields: Any) -> UserRow:
        if "role" in fields and fields["role"] not in ROLES:
            raise InputError(f"Unknown role {fields['role']!r}: use user or admin.")
        if "password" in fields:
            password = fields.pop("password")
            check_password_strength(password)
            fields["password_hash"] = hash_password(password)

        def write() -> UserRow:
            with self.store.session() as s:
                row = s.get(UserRow, user_id)
                if row is None:
                    raise StoreError(f"unknown user {user_id!r}")
                for k, v in fields.items():
                    setattr(row, k, v)
                return row

        return self.store._retry(write)

    # --- API tokens ----------------------------------------------------------------------------
    def create_token(self, user_id: str, name: str) -> tuple[ApiTokenRow, str]:
        """A new token for `user_id`; the plain token is returned once and never stored."""
        if self.get(user_id) is None:
            raise StoreError(f"unknown user {user_id!r}")
        plain = TOKEN_PREFIX + secrets.token_urlsafe(32)
        row = ApiTokenRow(user_id=user_id, name=name[:128], token_hash=token_digest(plain), hint=plain[:10])
        self.store._retry(lambda: self._add(row))
        return row, plain

    def user_for_token(self, plain: str) -> UserRow | None:
        """The enabled user owning this unrevoked token (its last use is recorded)."""
        if not plain.startswith(TOKEN_PREFIX):
            return None

        def write() -> UserRow | None:
            with self.store.session() as s:
                tok = s.scalar(select(ApiTokenRow).where(ApiTokenRow.token_hash == token_digest(plain)))
                if tok is None or tok.revoked_at is not None:
                    return None
                user = s.get(UserRow, tok.user_id)
                if user is None or user.disabled:
                    return None
                tok.last_used_at = utcnow()
                return user

        return self.store._retry(write)

    def tokens(self, user_id: str | None = None) -> list[ApiTokenRow]:
        with self.store.session() as s:
            q = select(ApiTokenRow).order_by(ApiTokenRow.created_at)
            if user_id:
                q = q.where(ApiTokenRow.user_id == user_id)
            return list(s.scalars(q))

    def revoke_token(self, token_id: str) -> ApiTokenRow:
        def write() -> ApiTokenRow:
            with self.store.session() as s:
                row = s.get(ApiTokenRow, token_id)
                if row is None:
                    raise StoreError(f"unknown token {token_id!r}")
                row.revoked_at = row.revoked_at or utcnow()
                return row

        return self.store._retry(write)

    # --- audit log -----------------------------------------------------------------------------
    def audit(self, actor: str, action: str, target: str = "", detail: str = "", address: str = "") -> None:
        row = AuditRow(actor=actor[:255], action=action[:64], target=target[:2048], detail=detail[:4000],
                       address=address[:64])
        self.store._retry(lambda: self._add(row))

    def audit_log(self, limit: int = 200) -> list[AuditRow]:
        with self.store.session() as s:
            return list(s.scalars(select(AuditRow).order_by(AuditRow.id.desc()).limit(limit)))
