"""Secret and PII scrubbing for everything the learning loop writes (datasets, adapter folders,
correction documents).

Secrets (platform tokens, cloud keys, private keys, bearer credentials) are always replaced.
Emails and phone numbers are replaced too, except the ones passed in `keep`: the loop passes the
contact details that appear verbatim in the documents an answer was grounded on (a helpdesk number
in a published policy is the answer, not a leak), never anything a user typed that the documents
do not contain.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

# Order matters: private keys and tokens first, so an email-looking fragment inside a key is gone
# before the email pattern runs.
SECRET_PATTERNS: dict[str, re.Pattern[str]] = {
    "PRIVATE_KEY": re.compile(
        r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----.*?(?:-----END [A-Z0-9 ]*PRIVATE KEY-----|\Z)", re.S
    ),
    "SLACK_TOKEN": re.compile(r"\bxox[abposre]-[A-Za-z0-9-]{10,}|\bxapp-\d-[A-Za-z0-9-]{10,}"),
    "SLACK_WEBHOOK": re.compile(r"https://hooks\.slack\.com/services/[A-Za-z0-9/_-]+"),
    # Discord bot token: base64(user id) . base64(timestamp) . HMAC
    "DISCORD_TOKEN": re.compile(r"\b[MNO][A-Za-z0-9_-]{23,27}\.[A-Za-z0-9_-]{6}\.[A-Za-z0-9_-]{27,40}\b"),
    "AWS_ACCESS_KEY": re.compile(r"\b(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA)[A-Z0-9]{16}\b"),
    "AWS_SECRET_KEY": re.compile(
        r"(?i)(aws_?secret_?access_?key|secret_?key)(\s*[:=]\s*[\"']?)[A-Za-z0-9/+=]{40}\b"
    ),
    "GCP_API_KEY": re.compile(r"\bAIza[0-9A-Za-z_-]{35}\b"),
    "AZURE_KEY": re.compile(r"(?i)(AccountKey|SharedAccessKey)=[A-Za-z0-9+/=]{20,}"),
    "GITHUB_TOKEN": re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{40,})\b"),
    "OPENAI_KEY": re.compile(r"\bsk-(?:proj-)?[A-Za-z0-9_-]{20,}\b"),
    "JWT": re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\b"),
    "BEARER": re.compile(r"(?i)\b(bearer)(\s+)[A-Za-z0-9._~+/=-]{16,}"),
    # "password: hunter22" / "api_key=..." (a colon or equals sign is required: "password policy" stays)
    "CREDENTIAL": re.compile(
        r"(?i)\b(password|passwd|pwd|passcode|api[_-]?key|secret|token)(\s*[:=]\s*)(?!\[)[^\s\"']{6,}"
    ),
}
EMAIL = re.compile(r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b")
# A phone number: optional +country, then digit groups separated by spaces, dots, dashes or
# parentheses, 9 to 15 digits in all. Dates (2025-03-04) and IPs (10.40.0.0) have fewer digits.
PHONE = re.compile(r"(?<![\w.+-])(?:\+\d{1,3}[ .-]?)?(?:\(\d{1,4}\)[ .-]?)?\d[\d .-]{6,}\d(?![\w-])")
_KEEP_LABEL = {
    "BEARER",
    "CREDENTIAL",
    "AWS_SECRET_KEY",
}  # patterns whose first group is a label worth keeping


@dataclass
class ScrubReport:
    """What was replaced, by kind (never the values themselves)."""

    counts: Counter[str] = field(default_factory=Counter)

    def add(self, other: ScrubReport) -> None:
        self.counts.update(other.counts)

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def _digits(text: str) -> int:
    return sum(ch.isdigit() for ch in text)


def contact_details(text: str) -> set[str]:
    """Emails and phone numbers found in `text` (used to build the `keep` set from documents)."""
    found = {m.group(0) for m in EMAIL.finditer(text)}
    found |= {m.group(0).strip() for m in PHONE.finditer(text) if 9 <= _digits(m.group(0)) <= 15}
    return found


def scrub(text: str, keep: Iterable[str] = (), report: ScrubReport | None = None) -> str:
    """`text` with secrets and PII replaced by [KIND] placeholders. Emails and phone numbers in `keep`
    stay (secrets never do)."""
    if not text:
        return text
    report = report if report is not None else ScrubReport()
    keep_set = set(keep)

    for kind, pattern in SECRET_PATTERNS.items():

        def secret(m: re.Match[str], kind: str = kind) -> str:
            report.counts[kind] += 1
            if kind in _KEEP_LABEL:
                return f"{m.group(1)}{m.group(2)}[{kind}]"
            return f"[{kind}]"

        text = pattern.sub(secret, text)

    def email(m: re.Match[str]) -> str:
        if m.group(0) in keep_set:
            return m.group(0)
        report.counts["EMAIL"] += 1
        return "[EMAIL]"

    def phone(m: re.Match[str]) -> str:
        value = m.group(0)
        if not 9 <= _digits(value) <= 15 or value.strip() in keep_set:
            return value
        report.counts["PHONE"] += 1
        trailing = value[len(value.rstrip()) :]
        return "[PHONE]" + trailing

    text = EMAIL.sub(email, text)
    return PHONE.sub(phone, text)


def source_contacts(prompt_json: str) -> set[str]:
    """Contact details in the documents an answer was grounded on: the prompt minus the question."""
    try:
        messages = json.loads(prompt_json) if prompt_json else []
    except json.JSONDecodeError:
        return set()
    text = "\n".join(m.get("content", "") for m in messages if m.get("role") != "assistant")
    return contact_details(text.rsplit("\n\nQuestion:", 1)[0])
