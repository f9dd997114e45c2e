"""Feedback rows -> training data for the learning loop.

- SFT: approved corrections, and answers with enough up-votes and no down-votes. The prompt is the
  exact chat logged at answer time (question plus retrieved sources), so training matches serving.
- KTO: thumbs as unpaired desirable / undesirable completions.
- DPO: an approved correction (chosen) against the answer it corrected (rejected).

Hygiene, in the order applied: only votes from verified identities count (a Slack or Discord user of
a signed request, a signed-in web user, the CLI operator; never an id a client made up), one
account's votes are capped (the most recent count), a vote needs `min_upvotes` distinct voters
agreeing before it becomes an example, answers from private scopes (every scope but the shared ones)
are left out of an adapter served to other scopes, secrets and PII are scrubbed,
exact duplicates dropped, and the train/validation split follows a hash of the prompt (the same
prompt always lands on the same side, in every dataset). When a parent adapter exists, only
feedback newer than its data is new; a replay share of earlier examples keeps it from forgetting.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import random
import re
from collections import Counter, defaultdict
from collections.abc import Collection, Iterable
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot.core.ports import Message
from bot.core.text import strip_citations
from bot.engine.scoring import EvalItem, normalize
from knowledge.store import AnswerRow, FeedbackRow, Store
from training.scrub import ScrubReport, scrub, source_contacts

if TYPE_CHECKING:
    from bot.core.settings import Settings

log = logging.getLogger(__name__)
# Votes rate the model only when the model's text was served. An extractive answer is a quote the
# engine chose after rejecting the generation (which is not logged); a declined one has no text.
# Corrections train from any answer whose prompt was logged.
RATED_MODES = ("generated",)


@dataclass(frozen=True)
class DatasetPolicy:
    min_upvotes: int = 2  # distinct verified voters that must agree (up, or down) before votes train
    max_votes_per_user: int = 20
    private_scopes: frozenset[str] = frozenset()
    # Scopes whose answers may train an adapter served to every scope; None: every scope is shared.
    shared_scopes: frozenset[str] | None = frozenset({"default"})
    verified_only: bool = True
    validation_share: float = 0.1
    replay_share: float = 0.5  # replayed earlier examples per new example

    def private_in(self, scopes: Iterable[str]) -> set[str]:
        """The private ones among `scopes`: listed as private, or not among the shared scopes."""
        return {s for s in scopes
                if s in self.private_scopes or (self.shared_scopes is not None and s not in self.shared_scopes)}

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> DatasetPolicy:
        values: dict[str, Any] = dict(
            min_upvotes=settings.min_upvotes,
            max_votes_per_user=settings.max_votes_per_user,
            private_scopes=frozenset(settings.private_scopes),
            shared_scopes=frozenset(settings.shared_scopes),
        )
        values.update(overrides)
        return cls(**values)


@dataclass
class Example:
    """One prompt -> completion pair (SFT), or a labelled completion (KTO: label True = desirable)."""

    prompt: list[Message]
    completion: str
    origin: str  # correction | upvoted | downvoted | corrected-answer
    answer_id: str
    question: str
    feedback_at: datetime
    label: bool = True

    @property
    def prompt_key(self) -> str:
        return hashlib.sha256(json.dumps(self.prompt, sort_keys=True).encode()).hexdigest()

    @property
    def key(self) -> str:
        return hashlib.sha256(f"{self.prompt_key}\x00{self.completion}\x00{self.label}".encode()).hexdigest()

    def sft_record(self) -> dict[str, Any]:
        """TRL's conversational prompt-completion format."""
        return {"prompt": self.prompt, "completion": [{"role": "assistant", "content": self.completion}]}

    def kto_record(self) -> dict[str, Any]:
        return {**self.sft_record(), "label": self.label}


@dataclass
class Pair:
    prompt: list[Message]
    chosen: str
    rejected: str
    answer_id: str
    feedback_at: datetime

    def dpo_record(self) -> dict[str, Any]:
        return {
            "prompt": self.prompt,
            "chosen": [{"role": "assistant", "content": self.chosen}],
            "rejected": [{"role": "assistant", "content": self.rejected}],
        }


@dataclass
class FeedbackDatasets:
    sft_train: list[Example] = field(default_factory=list)
    sft_validation: list[Example] = field(default_factory=list)
    kto_train: list[Example] = field(default_factory=list)
    dpo_train: list[Pair] = field(default_factory=list)
    replayed: int = 0
    stats: Counter[str] = field(default_factory=Counter)
    scrubbed: ScrubReport = field(default_factory=ScrubReport)
    data_until: datetime | None = None  # newest feedback used; the next run's "new" starts after it

    @property
    def data_hash(self) -> str:
        keys = sorted(e.key for e in self.sft_train + self.sft_validation + self.kto_train)
        keys += sorted(
            hashlib.sha256(json.dumps(p.dpo_record(), sort_keys=True).encode()).hexdigest()
            for p in self.dpo_train
        )
        return hashlib.sha256("\n".join(keys).encode()).hexdigest()[:16]

    def counts(self) -> dict[str, Any]:
        kto = Counter("desirable" if e.label else "undesirable" for e in self.kto_train)
        return {
            "sft_train": len(self.sft_train),
            "sft_validation": len(self.sft_validation),
            "replayed": self.replayed,
            "kto_desirable": kto["desirable"],
            "kto_undesirable": kto["undesirable"],
            "dpo_pairs": len(self.dpo_train),
            "sft_origins": dict(Counter(e.origin for e in self.sft_train)),
            "skipped": dict(self.stats),
            "scrubbed": dict(self.scrubbed.counts),
        }

    def trained_questions(self) -> set[str]:
        """Normalised questions of everything trained on (the gate's held-out set must avoid them)."""
        return {normalize(e.question) for e in self.sft_train + self.kto_train}

    def heldout_items(self) -> list[EvalItem]:
        """Held-out feedback as eval items: the validation examples' questions and reference answers."""
        return [EvalItem(question=e.question, answer=e.completion) for e in self.sft_validation]

    def write(self, folder: Path) -> None:
        """Write the (already scrubbed) datasets as JSONL files next to an adapter, for audit and replay."""
        folder.mkdir(parents=True, exist_ok=True)
        files = {
            "sft_train.jsonl": [
                dict(e.sft_record(), origin=e.origin, question=e.question) for e in self.sft_train
            ],
            "sft_validation.jsonl": [dict(e.sft_record(), question=e.question) for e in self.sft_validation],
            "kto_train.jsonl": [e.kto_record() for e in self.kto_train],
            "dpo_train.jsonl": [p.dpo_record() for p in self.dpo_train],
        }
        for name, rows in files.items():
            with open(folder / name, "w", encoding="utf-8") as fh:
                for row in rows:
                    fh.write(json.dumps(row, ensure_ascii=False) + "\n")


# --- building ----------------------------------------------------------------------------------------
def build_datasets(
    store: Store,
    policy: DatasetPolicy,
    *,
    since: datetime | None = None,
    serve_scopes: Collection[str] | None = None,
) -> FeedbackDatasets:
    """Datasets from every answer with feedback in `store`.

    since: the parent adapter's `data_until`; feedback up to it counts as earlier (replayed), later
    feedback as new. serve_scopes: the scopes the adapter will serve (None: every scope), which
    decides whether answers from private scopes may be used."""
    out = FeedbackDatasets()
    answers = {a.id: a for a in store.list_answers()}
    by_answer = _group_feedback(store.list_feedback(), policy.max_votes_per_user, out.stats, policy.verified_only)
    sft: list[Example] = []
    kto: list[Example] = []
    pairs: list[Pair] = []
    for answer_id, rows in by_answer.items():
        answer = answers.get(answer_id)
        if answer is None:
            out.stats["unknown_answer"] += 1
            continue
        if not _allowed_scopes(answer.scopes or [], policy.private_in(answer.scopes or []), serve_scopes):
            out.stats["private_scope"] += 1
            continue
        if not answer.prompt:
            out.stats["no_prompt"] += 1  # declined or failed: nothing was generated from a prompt
            continue
        made = _examples_for(answer, rows, policy, out.scrubbed)
        if made is None:
            out.stats["not_usable"] += 1
            continue
        sft.extend(made[0])
        kto.extend(made[1])
        pairs.extend(made[2])

    sft, kto = _dedupe(sft, out.stats, "duplicate_sft"), _dedupe(kto, out.stats, "duplicate_kto")
    train, out.sft_validation = _split(sft, policy.validation_share)
    # KTO and DPO follow the SFT split, so a held-out prompt is never trained on by any of them.
    out.kto_train = [e for e in kto if not is_validation(e.prompt_key, policy.validation_share)]
    out.dpo_train = [p for p in pairs if not is_validation(_key_of(p.prompt), policy.validation_share)]
    out.sft_train, out.replayed = _with_replay(train, since, policy.replay_share)
    if since is not None:  # preference data is not replayed: only what is new since the parent
        out.kto_train = [e for e in out.kto_train if e.feedback_at > since]
        out.dpo_train = [p for p in out.dpo_train if p.feedback_at > since]
    used = [_newest(rows) for rows in by_answer.values() if rows]
    out.data_until = max(used) if used else since
    return out


def _group_feedback(
    rows: Iterable[FeedbackRow], cap: int, stats: Counter[str], verified_only: bool = True
) -> dict[str, list[FeedbackRow]]:
    """Feedback per answer, with unverified votes and each user's votes beyond their `cap` most
    recent turned into 0."""
    rows = list(rows)
    by_user: dict[tuple[str, str], list[FeedbackRow]] = defaultdict(list)
    capped: set[int] = set()
    for row in rows:
        if row.vote and verified_only and not row.verified:
            capped.add(row.id)
            stats["votes_unverified"] += 1
        elif row.vote:
            by_user[(row.platform, row.user_id)].append(row)
    for votes in by_user.values():
        votes.sort(key=lambda r: (r.updated_at, r.id), reverse=True)
        capped.update(r.id for r in votes[cap:])
        stats["votes_capped"] += len(votes[cap:])
    grouped: dict[str, list[FeedbackRow]] = defaultdict(list)
    for row in rows:
        if row.id in capped:
            row = _without_vote(row)
            if not row.correction:
                continue
        grouped[row.answer_id].append(row)
    return grouped


def _without_vote(row: FeedbackRow) -> FeedbackRow:
    return FeedbackRow(
        id=row.id,
        answer_id=row.answer_id,
        user_id=row.user_id,
        platform=row.platform,
        vote=0,
        correction=row.correction,
        correction_status=row.correction_status,
        verified=row.verified,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _allowed_scopes(scopes: Collection[str], private: Collection[str], serve: Collection[str] | None) -> bool:
    """An answer touching a private scope may train only an adapter served to that scope alone."""
    touched = set(scopes) & set(private)
    if not touched:
        return True
    return serve is not None and bool(serve) and set(serve) <= touched


def _examples_for(
    answer: AnswerRow, rows: list[FeedbackRow], policy: DatasetPolicy, report: ScrubReport
) -> tuple[list[Example], list[Example], list[Pair]] | None:
    keep = source_contacts(answer.prompt)
    prompt = [
        {"role": m["role"], "content": scrub(m["content"], keep, report)} for m in json.loads(answer.prompt)
    ]
    question = scrub(answer.standalone_query or answer.question, keep, report)
    ups = sum(1 for r in rows if r.vote > 0)
    downs = sum(1 for r in rows if r.vote < 0)
    approved = sorted(
        (r for r in rows if r.correction and r.correction_status == "approved"),
        key=lambda r: (r.updated_at, r.id),
    )
    when = _newest(rows)
    generated = answer.mode in RATED_MODES and bool(answer.answer.strip())
    # Citation markers come off: the engine numbers and appends them itself (an uncited answer gets
    # its best source), and a model trained on "... [1]" endings learns to answer "[1]" alone.
    answer_text = strip_citations(scrub(answer.answer, keep, report)) if generated else ""

    def example(text: str, origin: str, label: bool = True) -> Example:
        return Example(prompt, text, origin, answer.id, question, when, label)

    sft: list[Example] = []
    kto: list[Example] = []
    pairs: list[Pair] = []
    if approved:
        fix = strip_citations(scrub(approved[-1].correction or "", keep, report))
        sft.append(example(fix, "correction"))
        kto.append(example(fix, "correction"))
        if generated and normalize(answer_text) != normalize(fix):
            kto.append(example(answer_text, "corrected-answer", False))
            pairs.append(Pair(prompt, fix, answer_text, answer.id, when))
    elif generated and ups >= policy.min_upvotes and downs == 0:
        sft.append(example(answer_text, "upvoted"))
        kto.append(example(answer_text, "upvoted"))
    elif generated and downs >= policy.min_upvotes and ups == 0:
        kto.append(example(answer_text, "downvoted", False))
    if not (sft or kto or pairs):
        return None
    return sft, kto, pairs


def _newest(rows: Iterable[FeedbackRow]) -> datetime:
    return max(r.updated_at for r in rows)


def _dedupe(examples: list[Example], stats: Counter[str], label: str) -> list[Example]:
    # corrections first, so that a correction wins over an identical up-voted answer
    ordered = sorted(examples, key=lambda e: (e.origin != "correction", e.feedback_at, e.answer_id))
    seen: set[str] = set()
    out = []
    for e in ordered:
        if e.key in seen:
            stats[label] += 1
            continue
        seen.add(e.key)
        out.append(e)
    return out


def _key_of(prompt: list[Message]) -> str:
    return hashlib.sha256(json.dumps(prompt, sort_keys=True).encode()).hexdigest()


def is_validation(prompt_key: str, share: float) -> bool:
    """Deterministic split: the first 8 hex digits of the prompt hash, as a fraction of 16**8."""
    return int(prompt_key[:8], 16) / 16**8 < share


def _split(examples: list[Example], share: float) -> tuple[list[Example], list[Example]]:
    train = [e for e in examples if not is_validation(e.prompt_key, share)]
    validation = [e for e in examples if is_validation(e.prompt_key, share)]
    return train, validation


def _with_replay(train: list[Example], since: datetime | None, share: float) -> tuple[list[Example], int]:
    """New examples plus a deterministic sample of earlier ones (ordered by hash, so reproducible)."""
    if since is None:
        return train, 0
    new = [e for e in train if e.feedback_at > since]
    earlier = sorted((e for e in train if e.feedback_at <= since), key=lambda e: e.key)
    replay = earlier[: min(len(earlier), math.ceil(share * len(new)))] if new else []
    return new + replay, len(replay)


# --- RAFT-style variants ------------------------------------------------------------------------------
_SOURCE_LINE = re.compile(r"^\[\d{1,2}\] (.*)$")


def _sources_of(prompt: list[Message]) -> tuple[str, list[str], str] | None:
    """(head, source lines without their numbers, tail) of the engine's user message, or None."""
    user = prompt[-1]["content"] if prompt and prompt[-1]["role"] == "user" else ""
    head, sep, rest = user.partition("Sources:\n")
    body, qsep, question = rest.partition("\n\nQuestion:")
    if not sep or not qsep:
        return None
    lines = [m.group(1) for line in body.splitlines() if (m := _SOURCE_LINE.match(line))]
    return (head + sep, lines, qsep + question) if lines else None


def with_distractors(examples: list[Example], copies: int = 1) -> list[Example]:
    """Variants of each example with its sources shuffled and one source of another question added as
    a distractor (RAFT): the answer stays the same, so the model learns to find it among sources in
    any order instead of echoing source [1] or whatever sounds related. Deterministic."""
    parsed = {e.key: _sources_of(e.prompt) for e in examples}
    pool = sorted({(e.answer_id, line) for e in examples if parsed[e.key] for line in parsed[e.key][1]})
    out: list[Example] = []
    for e in examples:
        if parsed[e.key] is None:
            continue
        head, lines, tail = parsed[e.key]
        others = [line for answer_id, line in pool if answer_id != e.answer_id and line not in lines]
        for copy in range(copies):
            rng = random.Random(f"{e.key}:{copy}")
            mixed = lines + ([rng.choice(others)] if others else [])
            rng.shuffle(mixed)
            user = head + "\n".join(f"[{i}] {line}" for i, line in enumerate(mixed, 1)) + tail
            prompt = [*e.prompt[:-1], {"role": "user", "content": user}]
            out.append(replace(e, prompt=prompt, origin=f"{e.origin}+distractor"))
    return out


def example_dict(example: Example) -> dict[str, Any]:
    """A JSON-friendly view of an example (dry runs print these)."""
    d = asdict(example)
    d["feedback_at"] = example.feedback_at.isoformat()
    return d
