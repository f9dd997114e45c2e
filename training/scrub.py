"""Secret and PII scrubbing for everything the learning loop writes (datasets, adapter folders,
correction documents).

Secrets are always replaced, found three ways:
- kbot's own patterns below (platform tokens with their labels, private key blocks, `password: ...`);
- detect-secrets' detectors (AWS, GitHub, GitLab, Stripe, SendGrid, npm, PyPI, JWT, Basic-auth URLs,
  ... kept up to date by that project), and its Shannon-entropy measure with its own limits (4.5 bits
  per character for base64-like text, 3.0 for hex) applied to long key-like tokens in prose;
- payment data checked, not guessed: card numbers must pass the Luhn check and IBANs the ISO 7064
  mod-97 check (python-stdnum), so order numbers and dates stay.

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
from functools import cache

from detect_secrets.core.plugins.util import get_mapping_from_secret_type_to_class
from detect_secrets.plugins.base import RegexBasedDetector
from detect_secrets.plugins.high_entropy_strings import Base64HighEntropyString, HexHighEntropyString
from stdnum import iban, luhn

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
# detect-secrets detectors not used: public IPs in documents are facts (a VPN gateway), and private
# keys are replaced whole by PRIVATE_KEY above (its detector matches only the header line).
_SKIPPED_DETECTORS = {"Public IP (ipv4)", "Private Key"}
# A key-like token: 20+ characters of base64/URL-safe alphabet with upper case, lower case and digits.
_KEYLIKE = re.compile(r"(?<![\w+/=.-])(?=[\w+/=-]*\d)(?=[\w+/=-]*[a-z])(?=[\w+/=-]*[A-Z])[A-Za-z0-9+/=_-]{20,}"
                      r"(?![\w+/=-])")
_HEXLIKE = re.compile(r"(?<![\w.-])(?=[0-9a-fA-F]*[a-fA-F])(?=[0-9a-fA-F]*\d)[0-9a-fA-F]{32,}(?![\w-])")
_CARD = re.compile(r"(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d-])")
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?\b")
_IPV4 = re.compile(r"\d{1,3}(?:\.\d{1,3}){3}")  # an address, not a phone number written with dots
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
    text = _detect_secrets(text, report)
    text = _payment_data(text, keep_set, report)

    def email(m: re.Match[str]) -> str:
        if m.group(0) in keep_set:
            return m.group(0)
        report.counts["EMAIL"] += 1
        return "[EMAIL]"

    def phone(m: re.Match[str]) -> str:
        value = m.group(0)
        if not 9 <= _digits(value) <= 15 or value.strip() in keep_set or _IPV4.fullmatch(value.strip()):
            return value
        report.counts["PHONE"] += 1
        trailing = value[len(value.rstrip()) :]
        return "[PHONE]" + trailing

    text = EMAIL.sub(email, text)
    return PHONE.sub(phone, text)


@cache
def _detectors() -> tuple[tuple[str, re.Pattern[str]], ...]:
    """(kind, pattern) for every regex detector detect-secrets ships (less _SKIPPED_DETECTORS)."""
    found = []
    for secret_type, plugin in sorted(get_mapping_from_secret_type_to_class().items()):
        if issubclass(plugin, RegexBasedDetector) and secret_type not in _SKIPPED_DETECTORS:
            kind = re.sub(r"[^A-Z0-9]+", "_", secret_type.upper()).strip("_")
            found.extend((kind, pattern) for pattern in plugin.denylist)
    return tuple(found)


def _detect_secrets(text: str, report: ScrubReport) -> str:
    for kind, pattern in _detectors():

        def replace(m: re.Match[str], kind: str = kind) -> str:
            report.counts[kind] += 1
            # A pattern whose one group is the value after some context (`aws_key = "..."`, the
            # password of `https://user:pw@host`) keeps the context; otherwise the whole match goes.
            groups = [i for i in range(1, (m.re.groups or 0) + 1) if m.group(i)]
            if len(groups) == 1 and m.start(groups[0]) > m.start() and m.end() - m.end(groups[0]) <= 2:
                g = groups[0]
                return m.group(0)[: m.start(g) - m.start()] + f"[{kind}]" + m.group(0)[m.end(g) - m.start():]
            return f"[{kind}]"

        text = pattern.sub(replace, text)

    b64, hexa = Base64HighEntropyString(), HexHighEntropyString()

    def entropic(m: re.Match[str], plugin: Base64HighEntropyString | HexHighEntropyString) -> str:
        token = m.group(0)
        if plugin.calculate_shannon_entropy(token) <= plugin.entropy_limit:
            return token
        report.counts["HIGH_ENTROPY_SECRET"] += 1
        return "[HIGH_ENTROPY_SECRET]"

    text = _HEXLIKE.sub(lambda m: entropic(m, hexa), text)
    return _KEYLIKE.sub(lambda m: entropic(m, b64), text)


def _payment_data(text: str, keep: set[str], report: ScrubReport) -> str:
    def card(m: re.Match[str]) -> str:
        digits = re.sub(r"\D", "", m.group(0))
        if m.group(0) in keep or not 13 <= len(digits) <= 19 or not luhn.is_valid(digits):
            return m.group(0)
        report.counts["CARD_NUMBER"] += 1
        return "[CARD_NUMBER]"

    def account(m: re.Match[str]) -> str:
        value = m.group(0)
        # The pattern may have taken a following capitalised word as the last group: try shorter.
        while value:
            if iban.is_valid(value):
                report.counts["IBAN"] += 1
                return "[IBAN]" + m.group(0)[len(value):]
            cut = value.rfind(" ")
            value = value[:cut] if cut > 0 else ""
        return m.group(0)

    return _IBAN.sub(account, _CARD.sub(card, text))


def source_contacts(prompt_json: str) -> set[str]:
    """Contact details in the documents an answer was grounded on: the prompt minus the question."""
    try:
        messages = json.loads(prompt_json) if prompt_json else []
    except json.JSONDecodeError:
        return set()
    text = "\n".join(m.get("content", "") for m in messages if m.get("role") != "assistant")
    return contact_details(text.rsplit("\n\nQuestion:", 1)[0])
