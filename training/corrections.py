"""Approved corrections go into the knowledge base at once, before any training: each becomes a
small Markdown document under <data_dir>/corrections/ ingested as `correction:<feedback id>` into the
scope of the channel where it was made, so the fact is retrievable by the next question.

The review actions (approve / reject) live here so that the CLI, the web console and the Slack and
Discord admin commands all do the same thing: the feedback row is saved first, then the document.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import TYPE_CHECKING

from bot.core.errors import StoreError
from bot.core.settings import Settings
from knowledge.store import FeedbackRow, Store
from training.scrub import scrub, source_contacts

if TYPE_CHECKING:
    from knowledge.ingest import Ingestor, IngestReport


def correction_scope(scopes: Collection[str], private_scopes: Collection[str], default: str) -> str:
    """Where a correction is filed: a private scope it was made in, else the channel's first scope."""
    private = [s for s in scopes if s in set(private_scopes)]
    if private:
        return private[0]
    return next(iter(scopes), default) or default


def ingest_correction(store: Store, ingestor: Ingestor, settings: Settings,
                      feedback_row: FeedbackRow) -> IngestReport:
    """Write an approved correction as a small Markdown document and ingest it, so the fact is
    retrievable at once (source `correction:<feedback id>`, in the scope of the channel it came from)."""
    answer = store.get_answer(feedback_row.answer_id)
    if answer is None or not feedback_row.correction:
        raise StoreError(f"feedback {feedback_row.id} has no correction on a known answer")
    s = settings
    keep = source_contacts(answer.prompt)
    question = scrub(answer.standalone_query or answer.question, keep).strip()
    body = scrub(feedback_row.correction, keep).strip()
    folder = s.data_dir / "corrections"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"correction-{feedback_row.id}.md"
    tmp = path.with_suffix(".md.tmp")
    tmp.write_text(f"# {question}\n\n{body}\n", encoding="utf-8")
    tmp.replace(path)
    from training.dataset import DatasetPolicy

    private = DatasetPolicy.from_settings(s).private_in(answer.scopes or [])
    scope = correction_scope(answer.scopes or [], private, s.default_scope)
    title = f"Correction: {question[:80]}"
    return ingestor.ingest_file(path, scope, source=correction_source(feedback_row.id), title=title)


def correction_source(feedback_id: int) -> str:
    return f"correction:{feedback_id}"


def approve_correction(store: Store, ingestor: Ingestor, settings: Settings,
                       feedback_id: int) -> tuple[FeedbackRow, IngestReport]:
    """Approve a pending correction (the row is saved first) and ingest it into the knowledge base."""
    row = store.set_correction_status(feedback_id, "approved")
    return row, ingest_correction(store, ingestor, settings, row)


def reject_correction(store: Store, ingestor: Ingestor, settings: Settings, feedback_id: int) -> FeedbackRow:
    """Reject a correction; one approved earlier is taken back out of the knowledge base."""
    row = store.set_correction_status(feedback_id, "rejected")
    path = settings.data_dir / "corrections" / f"correction-{feedback_id}.md"
    if path.exists():
        ingestor.forget(correction_source(feedback_id))
        path.unlink()
    return row
