"""Every knob in one place: environment variables with the KBOT_ prefix, or a `.env` file.

Platform tokens keep their conventional names (SLACK_BOT_TOKEN, DISCORD_TOKEN, ...) so that a
Slack or Discord guide's instructions work as written.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Callable, Iterable, Mapping
from functools import cached_property
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlparse

from pydantic import AliasChoices, Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="KBOT_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    # --- storage -------------------------------------------------------------------------------
    data_dir: Path = Field(Path("data"), description="Where the database, Chroma store and model cache live.")
    database_url: str | None = Field(None, description="SQLAlchemy URL; default sqlite:///<data_dir>/kbot.db.")
    chroma_path: Path | None = Field(None, description="Embedded Chroma folder; default <data_dir>/chroma.")
    chroma_url: str | None = Field(None, description="Chroma server URL (http://host:8000); switches to HttpClient.")
    chroma_token: SecretStr | None = Field(
        None, description="Bearer token sent to the Chroma server (its token-checking proxy, see docs/deploy.md).")
    collection: str = Field("kbot", description="Chroma collection name (3-512 chars of [a-zA-Z0-9._-]).")

    # --- models ----------------------------------------------------------------------------------
    embed_model: str | None = Field(None, description="Local sentence-transformers folder; default bundled MiniLM.")
    embed_batch_size: int = 64
    lm_path: str | None = Field(None, description="Local HF causal-LM folder or .gguf file; default SmolLM2-135M.")
    lm_dtype: str = Field("auto", description="auto | bfloat16 | float32 (auto = bf16 where the CPU has it).")
    lm_threads: int | None = Field(None, description="torch threads for generation (default: torch's choice).")
    adapter_path: str | None = Field(None, description="peft LoRA adapter folder applied at load.")
    openai_base_url: str | None = Field(None, description="OpenAI-compatible server (vLLM, Ollama) for generation.")
    openai_model: str = "default"
    openai_api_key: SecretStr | None = None
    max_new_tokens: int = 160
    repetition_penalty: float = 1.2
    temperature: float = 0.0

    # --- ingestion -------------------------------------------------------------------------------
    # MiniLM reads at most 256 word pieces; chunks stay below that so nothing is silently cut.
    # 100 tokens: all-MiniLM-L6-v2 was trained on short passages; on the sample eval 100 gave hit@5
    # 0.988 against 0.975 for 128 and 200 (bench/calibrate_abstention.py, docs/benchmarks.md).
    chunk_size: int = Field(100, description="Chunk size in embedder tokens.")
    chunk_overlap: int = Field(20, description="Overlap between consecutive chunks in tokens.")
    max_file_mb: float = Field(25.0, description="Files larger than this are refused.")
    default_scope: str = "default"

    # --- retrieval and answering --------------------------------------------------------------------
    top_k: int = 5
    hybrid: bool = Field(True, description="Fuse BM25 keyword search with vector search.")
    expand_neighbors: int = Field(0, description="Neighbouring chunks added around each hit.")
    reranker: str = Field("lexical", description="none | lexical | path to a local cross-encoder folder.")
    min_score: float = Field(0.40, description="Decline below this similarity of the best evidence sentence.")
    min_score_unknown_terms: float = Field(
        0.56, description="Decline below this similarity when the question has terms the knowledge base lacks.")
    evidence_sentences: int = Field(4, description="Sentences handed to the generator.")
    support_threshold: float = Field(0.75, description="Share of an answer's content words found in its sources.")
    history_turns: int = 6

    # --- web -------------------------------------------------------------------------------------
    host: str = "127.0.0.1"
    port: int = 8000
    public_url: str = Field("http://127.0.0.1:8000", description="Base URL used in 'full answer' links.")
    web_scopes: list[str] = Field(default_factory=lambda: ["default"], description="Scopes the web chat answers from.")
    max_question_chars: int = Field(4000, description="Longer questions are refused with a clear message.")

    # --- Slack -----------------------------------------------------------------------------------
    slack_bot_token: SecretStr | None = Field(
        None, validation_alias=AliasChoices("SLACK_BOT_TOKEN", "KBOT_SLACK_BOT_TOKEN"))
    slack_app_token: SecretStr | None = Field(
        None, validation_alias=AliasChoices("SLACK_APP_TOKEN", "KBOT_SLACK_APP_TOKEN"))
    slack_signing_secret: SecretStr | None = Field(
        None, validation_alias=AliasChoices("SLACK_SIGNING_SECRET", "KBOT_SLACK_SIGNING_SECRET")
    )
    slack_api_url: str = "https://slack.com/api/"
    slack_admins: list[str] = Field(default_factory=list, description="Slack user ids allowed admin commands.")
    slack_channel_scopes: dict[str, list[str]] = Field(default_factory=dict, description="channel id -> scopes")
    slack_user_scopes: dict[str, list[str]] = Field(default_factory=dict, description="user id -> extra DM scopes")

    # --- Discord ---------------------------------------------------------------------------------
    discord_token: SecretStr | None = Field(None, validation_alias=AliasChoices("DISCORD_TOKEN", "KBOT_DISCORD_TOKEN"))
    discord_api_url: str = "https://discord.com/api/v10"
    discord_guild_id: int | None = Field(None, description="Sync commands to this guild only (fast iteration).")
    discord_admin_users: list[str] = Field(
        default_factory=list, description="Discord user ids that are kbot admins in every server the bot is in.")
    discord_guild_admins: dict[str, list[str]] = Field(
        default_factory=dict, description="server id -> admin user ids, and role ids written 'role:<id>' "
        "(never role names: anyone who can create a role could name one).")
    discord_guild_scopes: dict[str, list[str]] = Field(
        default_factory=dict, description="server id -> the scopes that server's admins may map and ingest "
        "into; a server not listed may use none.")
    discord_thread_replies: bool = True
    discord_channel_scopes: dict[str, list[str]] = Field(default_factory=dict)

    # --- learning loop ---------------------------------------------------------------------------
    adapters_dir: Path | None = Field(None, description="Adapter versions; default <data_dir>/adapters.")
    min_upvotes: int = Field(2, description="Distinct verified voters an answer needs before a vote trains.")
    max_votes_per_user: int = 20
    shared_scopes: list[str] = Field(
        default_factory=lambda: ["default"],
        description="Scopes whose answers may train the adapter served to every scope; every other scope "
        "is private (its answers never train an adapter that other scopes are served with).")
    private_scopes: list[str] = Field(default_factory=list, description="Extra private scopes (even if shared).")
    train_after_feedback: int = Field(0, description="kbot serve trains after this many new feedback items (0=off).")
    train_schedule: str | None = Field(None, description="Cron-like 'M H * * *' schedule for kbot serve.")
    lora_rank: int = 8
    # The recipe bench/learning_loop.py measured (docs/learning-loop.md)
    train_epochs: float = 3.0
    learning_rate: float = 5e-4
    gate_tolerance: float = 0.02
    eval_file: Path | None = Field(None, description="Held-out questions (JSONL) for the adapter gate; "
                                   "default examples/questions.jsonl when present.")

    # --- sign-in, access and limits ---------------------------------------------------
    web_auth: Literal["oidc", "local", "none"] | None = Field(
        None, description="oidc | local | none. Default: oidc when KBOT_OIDC_ISSUER is set, else local. "
        "none (no sign-in, everyone is the local admin) is refused on any address but 127.0.0.1.")
    oidc_issuer: str | None = Field(None, description="OpenID Connect issuer URL (discovery at "
                                    "<issuer>/.well-known/openid-configuration).")
    oidc_client_id: str | None = None
    oidc_client_secret: SecretStr | None = None
    oidc_scopes: str = Field("openid email profile", description="Scopes asked of the IdP.")
    oidc_groups_claim: str = Field("groups", description="ID-token / userinfo claim that lists the user's groups.")
    oidc_group_scopes: dict[str, list[str]] = Field(
        default_factory=dict, description="IdP group -> knowledge scopes its members may read.")
    oidc_admin_groups: list[str] = Field(default_factory=list, description="IdP groups whose members are admins.")
    session_secret: SecretStr | None = Field(
        None, description="Key that signs session cookies; default: generated once into <data_dir>/session.key "
        "(set it when several replicas serve the web).")
    session_hours: float = Field(12.0, description="A sign-in lasts this long.")
    trusted_hosts: list[str] = Field(
        default_factory=list, description="Host names the web app answers to; default: the host of "
        "KBOT_PUBLIC_URL plus 127.0.0.1 and localhost.")
    cors_origins: list[str] = Field(default_factory=list, description="Origins allowed cross-site (none by default).")
    max_request_kb: int = Field(256, description="Largest request body of the JSON API and forms (uploads: "
                                "KBOT_MAX_FILE_MB).")
    question_rate: str = Field("20/minute", description="Questions per person on each platform "
                               "(limits syntax, e.g. '20/minute;200/day').")
    sign_in_rate: str = Field("10/minute", description="Password sign-in attempts per address and account.")
    rate_limit_storage: str = Field("memory://", description="Where rate-limit counters live (memory:// or "
                                    "redis://host:6379 when several replicas serve).")
    fetch_allow_hosts: list[str] = Field(
        default_factory=list, description="Intranet hosts kbot may fetch URLs from although they resolve to "
        "private addresses: 'wiki.corp' (ports 80/443) or 'wiki.corp:8080'.")
    fetch_timeout_s: float = Field(30.0, description="Total time one URL download may take.")
    fetch_max_redirects: int = 5
    max_unzipped_mb: float = Field(200.0, description="DOCX/ZIP members may inflate to this much in total.")
    max_zip_ratio: float = Field(100.0, description="Refuse DOCX/ZIP files that inflate more than this ratio.")
    parse_memory_mb: int = Field(1024, description="Address-space cap of the process that parses an uploaded "
                                 "file (0: parse in the server process).")
    answer_retention_days: int = Field(365, description="Stored questions, prompts and answers older than this "
                                       "are deleted (with their feedback, except corrections awaiting review); "
                                       "0 keeps them.")
    event_retention_days: int = Field(14, description="Platform delivery ids kept for de-duplication.")

    @cached_property
    def auth_mode(self) -> str:
        """The sign-in mode in force: the configured one, else oidc when an issuer is set, else local."""
        return self.web_auth or ("oidc" if self.oidc_issuer else "local")

    @cached_property
    def allowed_hosts(self) -> list[str]:
        if self.trusted_hosts:
            return list(self.trusted_hosts)
        host = urlparse(self.public_url).hostname or "127.0.0.1"
        return list(dict.fromkeys([host, "127.0.0.1", "localhost"]))

    # --- operations (metrics, logs, traces) ----------------------------------------------------------
    metrics_token: SecretStr | None = Field(
        None, description="Bearer token that GET /metrics requires (default: /metrics is open, like /healthz).")
    log_format: str = Field("auto", description="auto | json | rich: JSON lines when stderr is not a terminal.")

    # --- derived -----------------------------------------------------------------------------------
    @cached_property
    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'kbot.db'}"

    @cached_property
    def chroma_dir(self) -> Path:
        return self.chroma_path or self.data_dir / "chroma"

    @cached_property
    def adapters_root(self) -> Path:
        return self.adapters_dir or self.data_dir / "adapters"

    def masked(self, mask_url: Callable[[str], str]) -> dict[str, Any]:
        """Effective settings for display: secrets replaced by ***, and every URL-valued setting shown
        through `mask_url` (knowledge.urls.mask_url: SQLAlchemy's rendering, which hides passwords)."""
        out: dict[str, Any] = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            if isinstance(value, SecretStr):
                value = "***" if value.get_secret_value() else ""
            elif isinstance(value, str) and "://" in value:
                value = mask_url(value)
            out[name] = value
        out["db_url (effective)"] = mask_url(self.db_url)
        return out


# --- loading: one clear line for a bad setting, a warning for an unknown one -----------------------
NOT_SETTINGS = frozenset({"KBOT_TEST_PG_URL"})  # KBOT_ variables read by tools, not by Settings


def env_names(cls: type[Settings] = Settings) -> dict[str, str]:
    """Every environment variable Settings reads -> its field name."""
    names: dict[str, str] = {}
    for name, info in cls.model_fields.items():
        names[f"KBOT_{name.upper()}"] = name
        alias = info.validation_alias
        for choice in alias.choices if isinstance(alias, AliasChoices) else ():
            names[str(choice).upper()] = name
    return names


def unknown_variables(environ: Mapping[str, str] | None = None, env_file: Path | None = Path(".env")) -> list[str]:
    """One warning line per KBOT_* variable (in the environment or the .env file) that no setting reads,
    with the closest known name."""
    known = env_names()
    seen: Iterable[str] = list((os.environ if environ is None else environ).keys())
    if env_file is not None and env_file.is_file():
        from dotenv import dotenv_values  # pydantic-settings reads .env with python-dotenv too

        seen = [*seen, *dotenv_values(env_file).keys()]
    warnings = []
    for name in sorted({n.upper() for n in seen}):
        if not name.startswith("KBOT_") or name in known or name in NOT_SETTINGS:
            continue
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.75)
        hint = f"; did you mean {close[0]}?" if close else " (see `kbot config`)"
        warnings.append(f"unknown setting {name} is ignored{hint}")
    return warnings


def load_settings(**overrides: Any) -> Settings:
    """Settings from the environment and .env; a bad value raises ConfigError naming the variable."""
    from bot.core.errors import ConfigError

    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            field = str(error["loc"][0]) if error["loc"] else "?"
            problems.append(f"KBOT_{field.upper()}: {error['msg']} (got {str(error.get('input'))[:40]!r})")
        raise ConfigError("bad setting " + "; ".join(problems)) from None


def secret(value: SecretStr | None) -> str | None:
    """The plain value of an optional secret."""
    return value.get_secret_value() if value else None
