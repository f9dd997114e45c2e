"""Every error kbot raises on purpose, in one tree (the shape of httpx's `_exceptions.py`).

`str(exc)` is always one line a person can act on: the CLI prints it, the web answers it with a 4xx,
and the chat adapters show it to the person who asked.

    KbotError
    ├── ConfigError              a missing token, a bad setting, a model that is not where it should be
    │   ├── ChannelNotConfigured     Slack/Discord started without the tokens its mode needs
    │   └── ModelNotFound            a configured or bundled model is missing
    ├── InputError               a question, scope name, file or URL that cannot be accepted
    │   ├── QuestionRejected         empty or over the length limit
    │   ├── InvalidScope             not a valid scope name / too many scopes
    │   ├── DownloadError            a URL or a platform file could not be fetched
    │   └── ReaderError              a document that cannot be read (encrypted PDF, binary, too large ...)
    │       └── UnsupportedType          a file type kbot does not read (skipped, not failed)
    ├── StoreError               a store operation that cannot be done
    │   ├── UnknownAnswer            feedback or a retry for an answer id that was never logged
    │   └── RegistryError            an adapter operation that cannot be done (unknown version ...)
    ├── GenerationError          the language model failed (model error, server unreachable)
    └── AnswerFailed             retrieval or generation failed; the question is logged under `answer_id`
"""

from __future__ import annotations


class KbotError(Exception):
    """The root of every error kbot raises on purpose."""


# --- configuration ---------------------------------------------------------------------------------
class ConfigError(KbotError):
    """A setting is missing or wrong; the message names it."""


class ChannelNotConfigured(ConfigError):
    """A token or secret that the chosen chat platform mode needs is missing."""


class ModelNotFound(ConfigError):
    """A configured or bundled model is missing; the message says how to get it."""


# --- input -----------------------------------------------------------------------------------------
class InputError(KbotError):
    """Something a person or a file gave us that cannot be accepted; the message says why."""


class QuestionRejected(InputError):
    """An empty question, or one over `max_question_chars`."""


class InvalidScope(InputError):
    """A scope name that breaks the scope-name rule, or too many scopes at once."""


class DownloadError(InputError):
    """A file or URL could not be fetched; the message is safe to show to the person who asked."""


class ReaderError(InputError):
    """A file that cannot be read; str(exc) is one clear line, e.g. 'encrypted PDF (password required)'."""


class UnsupportedType(ReaderError):
    """The file's type is not one kbot reads; callers skip the file with a note."""


# --- store -----------------------------------------------------------------------------------------
class StoreError(KbotError):
    """A store operation that cannot be done (shown to people as is)."""


class UnknownAnswer(StoreError):
    def __init__(self, answer_id: str):
        super().__init__(f"unknown answer id: {answer_id!r}")
        self.answer_id = answer_id


class RegistryError(StoreError):
    """An adapter operation that cannot be done (unknown version, missing folder, nothing to roll back)."""


# --- answering -------------------------------------------------------------------------------------
class GenerationError(KbotError):
    """Generation failed (model error, server unreachable); the engine quotes the evidence instead."""


class AnswerFailed(KbotError):
    """Retrieval or generation failed; the question was still logged under `answer_id`."""

    def __init__(self, answer_id: str, cause: BaseException):
        super().__init__(f"answer {answer_id} failed: {cause}")
        self.answer_id = answer_id
        self.cause = cause
