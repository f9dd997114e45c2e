"""Readers: each format on the sample corpus, and every kind of bad file built at test time."""

from __future__ import annotations

import io
import json
import random
import zipfile
from pathlib import Path

import pypdf
import pytest

from knowledge.readers import (
    SUPPORTED_EXTENSIONS,
    ReaderError,
    UnsupportedType,
    _clean_pdf_page,
    html_to_markdown,
    read_bytes,
    read_file,
)
from tests.conftest import ROOT

DOCS = ROOT / "examples" / "docs"
RESTRICTED = ROOT / "examples" / "docs-restricted"
EXPENSE_PDF = DOCS / "finance" / "expense-policy.pdf"
MB = 1024 * 1024


def text_of(result) -> str:
    return "\n".join(s.text for s in result.sections)


def error_of(path: Path, **kw) -> str:
    with pytest.raises(ReaderError) as info:
        read_file(path, **kw)
    message = str(info.value)
    assert "\n" not in message and message, "errors must be one non-empty line"
    return message


# --- the sample corpus ----------------------------------------------------------------------------

def test_supported_extensions() -> None:
    assert SUPPORTED_EXTENSIONS == {".md", ".markdown", ".txt", ".text", ".rst", ".html", ".htm", ".pdf",
                                    ".docx", ".csv"}


def test_corpus_shape() -> None:
    files = [p for p in DOCS.rglob("*") if p.is_file()]
    by_ext: dict[str, int] = {}
    for p in files:
        by_ext[p.suffix] = by_ext.get(p.suffix, 0) + 1
    assert 25 <= len(files) <= 35
    assert by_ext[".html"] >= 2 and by_ext[".pdf"] >= 2 and by_ext[".docx"] >= 2 and by_ext[".csv"] >= 1
    assert len({p.name for p in files}) == len(files), "questions cite sources by file name"
    assert sum(p.stat().st_size for p in files) < 2 * MB
    for p in files:  # every sample document reads cleanly
        assert read_file(p).sections


def test_markdown() -> None:
    result = read_file(DOCS / "it" / "vpn.md")
    assert result.kind == "markdown" and result.title == "Remote Access VPN"
    assert "## Requirements" in text_of(result) and "vpn.acme.example" in text_of(result)
    assert [s.page for s in result.sections] == [None]


def test_plain_text_headings_become_markdown() -> None:
    result = read_file(DOCS / "it" / "printing.txt")
    text = text_of(result)
    assert result.kind == "text" and result.title == "PRINTING AT ACME ROBOTICS"
    assert "# PRINTING AT ACME ROBOTICS" in text and "\n## Large format\n" in text
    assert "=====" not in text
    caps = text_of(read_file(DOCS / "security" / "acceptable-use.txt"))
    assert "## 4. USB STORAGE" in caps


def test_markdown_front_matter_setext_and_fences(tmp_path: Path) -> None:
    p = tmp_path / "note.md"
    p.write_text("---\ntitle: From Front Matter\nowner: x\n---\nBig Title\n=========\n\nSub\n---\n\n"
                 "```bash\n# not a heading\n```\n", encoding="utf-8")
    result = read_file(p)
    assert result.title == "From Front Matter"
    text = text_of(result)
    assert text.startswith("# Big Title") and "## Sub" in text and "owner: x" not in text
    assert "# not a heading" in text and "## # not" not in text


@pytest.mark.parametrize("name", ["helpdesk.html", "benefits-overview.html"])
def test_html_boilerplate_is_stripped(name: str) -> None:
    path = next(DOCS.rglob(name))
    result = read_file(path)
    text = text_of(result)
    assert result.kind == "html"
    for junk in ["gtag", "dataLayer", "_paq", "font-family", "cookie", "Cookie", "Accept all", "Canteen Menu",
                 "People Directory", "Schnitzel", "Imprint", "enable JavaScript", "Search the intranet",
                 "Holiday calendar", "benefits@acme.example", "Acme People Hub ·"]:
        assert junk not in text, junk
    assert text.lstrip().startswith("# ")


def test_html_helpdesk_content() -> None:
    result = read_file(DOCS / "it" / "helpdesk.html")
    text = text_of(result)
    assert result.title.startswith("IT Helpdesk")
    assert "## Opening hours" in text and "07:30 to 19:00 CET" in text
    assert "- Phone: +49 89 5550 4357 (internal extension 4357" in text
    assert "Priority: P1; Meaning: Many people cannot work" in text  # header table -> labelled rows
    assert "1. Restart the device" in text


def test_html_to_markdown_structures() -> None:
    html = """<html><head><title>T</title></head><body>
      <div class="cookie-consent">We use cookies</div><header><a>Logo</a></header>
      <main><article><header><h1>Article <em>Title</em></h1></header>
      <p>One<br>Two</p>
      <ul><li>outer<ul><li>inner</li></ul></li></ul>
      <table><tr><td>a</td><td>b</td></tr></table>
      <pre>code  block</pre><div hidden>secret</div><div role="navigation">menu</div></article></main>
      <footer>foot</footer></body></html>"""
    title, md = html_to_markdown(html)
    assert title == "T"
    assert "# Article Title" in md
    assert "- outer\n  - inner" in md
    assert "| a | b |" in md
    assert "```\ncode  block\n```" in md
    for junk in ("cookies", "Logo", "secret", "menu", "foot"):
        assert junk not in md


def test_html_title_falls_back_to_h1(tmp_path: Path) -> None:
    p = tmp_path / "page.htm"
    p.write_text("<h1>Only heading</h1><p>Body text.</p>", encoding="utf-8")
    assert read_file(p).title == "Only heading"


def test_pdf_pages_title_and_cleanup() -> None:
    result = read_file(EXPENSE_PDF)
    assert result.kind == "pdf" and result.title == "Expense and Approval Policy"
    assert [s.page for s in result.sections] == [1, 2, 3]
    page2 = result.sections[1].text
    assert "United States (Boston) 51 EUR 76 EUR" in page2  # per-diem table sits on page 2
    assert "page 2 of 3" not in text_of(result)  # running footer removed
    assert "who spend money on behalf of the company" in result.sections[0].text  # wrapped lines re-joined
    assert "\n2. Submitting expenses\n" in result.sections[0].text  # numbered headings stay on their own line


def test_pdf_line_cleanup_unit() -> None:
    raw = ("This is a long line of text that wraps into the next line and continues with reim-\n"
           "bursement rules that matter for everybody in the whole company.\n"
           "Short heading\n"
           "Another paragraph line.")
    lines = _clean_pdf_page(raw)
    assert lines[0].endswith(
        "continues with reimbursement rules that matter for everybody in the whole company."
    )
    assert lines[1:] == ["Short heading", "Another paragraph line."]


def test_docx_headings_tables_and_title() -> None:
    result = read_file(DOCS / "hr" / "remote-work-policy.docx")
    text = text_of(result)
    assert result.kind == "docx" and result.title == "Hybrid and Remote Work Policy"
    assert "# Hybrid and Remote Work Policy" in text and "\n## Office days\n" in text
    assert "### Within the European Union" in text
    assert "Allowance: Internet allowance; Amount: 25 EUR per month" in text
    assert "- Do not print Confidential documents at home." in text


def test_docx_title_falls_back_to_first_heading() -> None:
    result = read_file(DOCS / "onboarding" / "onboarding-checklist.docx")
    assert result.title == "New Joiner Onboarding Checklist"
    assert "Nadia Ferreira" in text_of(result)


def test_csv_semicolon_dialect() -> None:
    result = read_file(DOCS / "facilities" / "office-directory.csv")
    text = text_of(result)
    assert result.kind == "csv" and result.title == "office-directory"
    assert text.startswith("# office-directory\n")
    assert "Office: Berlin; Legal entity: Acme Robotics GmbH; Address: Am Spreeufer 5, 10178 Berlin" in text
    assert "Notes: Software and AI team; shared office floor, no parking" in text  # quoted ';' kept


def test_csv_rows_are_grouped(tmp_path: Path) -> None:
    p = tmp_path / "catalogue.csv"
    p.write_text("Name,Value\n" + "".join(f"item{i},{i}\n" for i in range(95)), encoding="utf-8")
    result = read_file(p)
    assert len(result.sections) == 3
    assert all(s.text.startswith("# catalogue\n") for s in result.sections)
    assert "Name: item94; Value: 94" in result.sections[-1].text


def test_read_bytes_matches_read_file() -> None:
    for path in (EXPENSE_PDF, DOCS / "it" / "wifi.md", DOCS / "hr" / "remote-work-policy.docx"):
        assert read_bytes(path.read_bytes(), path.name) == read_file(path)


def test_text_encodings(tmp_path: Path) -> None:
    bom = tmp_path / "bom.md"
    bom.write_bytes(b"\xef\xbb\xbf# Caf\xc3\xa9\n\nText.\n")
    assert read_file(bom).title == "Café"
    utf16 = tmp_path / "wide.txt"
    utf16.write_bytes("# Wide\n\nÜbersicht über UTF-16.\n".encode("utf-16"))
    assert "Übersicht" in text_of(read_file(utf16))


def test_eval_facts_are_in_their_sources() -> None:
    docs = {p.name: p for p in DOCS.rglob("*") if p.is_file()}
    texts = {name: text_of(read_file(p)) for name, p in docs.items()}
    for file in ("questions.jsonl", "questions_smoke.jsonl"):
        rows = [json.loads(line) for line in (ROOT / "examples" / file).read_text().splitlines() if line]
        for row in rows:
            if row["answerable"]:
                assert row["sources"] and all(s in docs for s in row["sources"]), row
                assert row["fact"] in texts[row["sources"][0]], row
                assert row["fact"].lower() in row["answer"].lower(), row
            else:
                assert row["answer"] == "" and row["sources"] == [], row


def test_restricted_canary_only_in_restricted_scope() -> None:
    canary = "Project Nightjar acquisition budget is 42 million euros"
    assert any(canary in text_of(read_file(p)) for p in RESTRICTED.rglob("*.md"))
    assert not any("Nightjar" in text_of(read_file(p)) for p in DOCS.rglob("*") if p.is_file())


# --- bad files --------------------------------------------------------------------------------------

def _encrypted_pdf(tmp_path: Path, user: str) -> Path:
    writer = pypdf.PdfWriter(clone_from=EXPENSE_PDF)
    writer.encrypt(user_password=user, owner_password="owner-secret", algorithm="RC4-128")
    p = tmp_path / "locked.pdf"
    with p.open("wb") as f:
        writer.write(f)
    return p


def test_encrypted_pdf_needs_password(tmp_path: Path) -> None:
    assert error_of(_encrypted_pdf(tmp_path, "s3cret")) == "encrypted PDF (password required)"


def test_pdf_encrypted_with_empty_password_is_read(tmp_path: Path) -> None:
    result = read_file(_encrypted_pdf(tmp_path, ""))
    assert "76 EUR" in result.sections[1].text


def test_pdf_aes_without_crypto_backend(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_backend(self, password):
        raise pypdf.errors.DependencyError("cryptography>=3.1 is required for AES algorithm")

    monkeypatch.setattr(pypdf.PdfReader, "decrypt", no_backend)
    assert error_of(_encrypted_pdf(tmp_path, "")).startswith("encrypted PDF (AES")


def test_corrupt_pdf(tmp_path: Path) -> None:
    truncated = tmp_path / "truncated.pdf"
    truncated.write_bytes(EXPENSE_PDF.read_bytes()[:2000])
    assert error_of(truncated).startswith("corrupt PDF: ")
    garbage = tmp_path / "garbage.pdf"
    garbage.write_bytes(b"this is not a pdf at all")
    assert error_of(garbage).startswith("corrupt PDF: ")


def test_pdf_without_text(tmp_path: Path) -> None:
    writer = pypdf.PdfWriter()
    writer.add_blank_page(width=595, height=842)
    p = tmp_path / "scan.pdf"
    with p.open("wb") as f:
        writer.write(f)
    assert error_of(p) == "no extractable text (scanned PDF?)"


@pytest.mark.parametrize("name", ["image.txt", "image.md", "image.csv", "image.html"])
def test_binary_file_with_text_extension(tmp_path: Path, name: str) -> None:
    p = tmp_path / name
    p.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 4)
    assert error_of(p) == "binary file with a text extension"


def test_binary_without_nul_bytes(tmp_path: Path) -> None:
    p = tmp_path / "blob.txt"
    p.write_bytes(bytes(random.Random(1).randrange(1, 32) for _ in range(4000)))
    assert error_of(p) == "binary file with a text extension"


@pytest.mark.parametrize("name", ["e.txt", "e.md", "e.csv", "e.html", "e.pdf", "e.docx"])
def test_empty_file(tmp_path: Path, name: str) -> None:
    p = tmp_path / name
    p.write_bytes(b"")
    assert error_of(p) == "empty file"


@pytest.mark.parametrize("name", ["blank.txt", "blank.md", "blank.rst"])
def test_whitespace_only_file(tmp_path: Path, name: str) -> None:
    p = tmp_path / name
    p.write_bytes(b"  \n\t\r\n   \n")
    assert error_of(p) == "empty file"


def test_legacy_encodings_are_detected(tmp_path: Path) -> None:
    p = tmp_path / "windows.txt"
    p.write_bytes("Café prices in München: 4 € for “coffee” – “tea” is free.".encode("cp1252"))
    assert read_file(p).sections[0].text == "Café prices in München: 4 € for “coffee” – “tea” is free."
    latin = tmp_path / "latin1.md"
    latin.write_bytes("# Menü\n\nCrème brûlée à la carte.".encode("latin-1"))
    assert read_file(latin).sections[0].text.endswith("Crème brûlée à la carte.")
    for text, encoding in [("Příliš žluťoučký kůň úpěl ďábelské ódy. Čeština je krásná.", "cp1250"),
                           ("Привет, как дела? Это тест кодировки.", "cp1251")]:
        other = tmp_path / f"{encoding}.txt"
        other.write_bytes(text.encode(encoding))
        assert read_file(other).sections[0].text == text


def test_undecodable_text(tmp_path: Path) -> None:
    p = tmp_path / "mixed.txt"
    p.write_bytes("Grüße ".encode() * 20 + b"\xff\xfe\xfa" + "Grüße".encode() * 20)
    assert error_of(p) == ("not valid text in UTF-8 or any other encoding kbot recognises "
                           "(undecodable bytes at offset 160)")


def test_over_size_limit(tmp_path: Path) -> None:
    p = tmp_path / "huge.pdf"
    with p.open("wb") as f:
        f.truncate(int(30.2 * MB))  # sparse: refused from its size alone, never read
    assert error_of(p, max_bytes=25 * MB) == "file is 30.2 MB, over the 25 MB limit"
    with pytest.raises(ReaderError, match="over the 1 KB limit"):
        read_bytes(b"# x\n" * 1000, "note.md", max_bytes=1024)
    assert read_file(DOCS / "it" / "vpn.md", max_bytes=25 * MB).title == "Remote Access VPN"


def test_corrupt_docx(tmp_path: Path) -> None:
    p = tmp_path / "broken.docx"
    p.write_bytes(random.Random(7).randbytes(5000))
    assert error_of(p) == "corrupt DOCX: not a ZIP archive"
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("hello.txt", "a zip, but not a Word document")
    q = tmp_path / "zip.docx"
    q.write_bytes(buf.getvalue())
    assert error_of(q).startswith("corrupt DOCX: ")


def test_unsupported_extension(tmp_path: Path) -> None:
    p = tmp_path / "drawing.xyz"
    p.write_text("whatever")
    with pytest.raises(UnsupportedType) as info:
        read_file(p)
    assert str(info.value) == "unsupported file type .xyz"
    assert isinstance(info.value, ReaderError)
    with pytest.raises(UnsupportedType, match="no extension"):
        read_bytes(b"data", "Makefile")


def test_missing_file(tmp_path: Path) -> None:
    assert error_of(tmp_path / "nope.md").startswith("cannot open file")


def test_html_with_only_boilerplate(tmp_path: Path) -> None:
    p = tmp_path / "shell.html"
    p.write_text("<html><body><nav>Home</nav><script>var x=1;</script><footer>(c)</footer></body></html>")
    assert error_of(p) == "no extractable text"


def test_csv_header_only(tmp_path: Path) -> None:
    p = tmp_path / "only-header.csv"
    p.write_text("Name,Value\n")
    assert error_of(p).startswith("no data rows")


@pytest.mark.parametrize("source", [EXPENSE_PDF, DOCS / "hr" / "remote-work-policy.docx"])
def test_mangled_binaries_raise_only_reader_errors(source: Path) -> None:
    data = source.read_bytes()
    rng = random.Random(3)
    for cut in [10, 100, len(data) // 3, len(data) // 2, len(data) - 10]:
        mangled = [data[:cut], data[:cut] + rng.randbytes(50), bytearray(data)]
        mangled[2][cut:cut + 40] = rng.randbytes(40)
        for blob in mangled:
            try:
                read_bytes(bytes(blob), source.name)
            except ReaderError as exc:
                assert str(exc) and "\n" not in str(exc)


# --- archives and PDF limits (issue 16) ------------------------------------------------------------------
def test_zip_bombs_are_refused_from_the_archive_directory(tmp_path: Path) -> None:
    from knowledge.readers import ArchiveLimits, read_bytes
    from tests.knowledge.zip_bombs import docx_bomb

    big = docx_bomb(tmp_path / "big.docx", 300).read_bytes()
    assert len(big) < 1_000_000  # 300 MB of text in under a megabyte
    with pytest.raises(ReaderError, match=r"would inflate to 300 MB, over the 200 MB limit \(a zip bomb\?\)"):
        read_bytes(big, "big.docx")
    dense = docx_bomb(tmp_path / "dense.docx", 20).read_bytes()  # under the total, but 1000:1
    with pytest.raises(ReaderError, match=r"inflates \d[\d,]* times, over the 100x limit"):
        read_bytes(dense, "dense.docx")
    with pytest.raises(ReaderError, match="inflates"):
        read_bytes(dense, "dense.docx", archive=ArchiveLimits(max_ratio=50))
    normal = (DOCS / "hr" / "remote-work-policy.docx").read_bytes()
    assert read_bytes(normal, "policy.docx").kind == "docx"


def test_pypdf_has_its_decompression_limits() -> None:
    """pyproject's floor (pypdf>=6.10.2) is the first release with output limits on every filter, the
    /Length cap and FlateDecode parameter limits."""
    from importlib.metadata import version

    from pypdf import filters

    major, minor, patch = (int(p) for p in version("pypdf").split(".")[:3])
    assert (major, minor, patch) >= (6, 10, 2)
    for limit in ("ZLIB_MAX_OUTPUT_LENGTH", "LZW_MAX_OUTPUT_LENGTH", "RUN_LENGTH_MAX_OUTPUT_LENGTH",
                  "MAX_DECLARED_STREAM_LENGTH", "MAX_ARRAY_BASED_STREAM_OUTPUT_LENGTH"):
        assert 0 < getattr(filters, limit) <= 100_000_000, limit


def test_isolated_parsing_turns_a_parser_out_of_memory_into_a_clear_error() -> None:
    from knowledge.readers import ArchiveLimits
    from knowledge.sandbox import read_isolated

    data = (DOCS / "hr" / "remote-work-policy.docx").read_bytes()
    ok = read_isolated(data, "policy.docx", max_bytes=None, archive=ArchiveLimits(), memory_mb=1024)
    assert ok.title == "Hybrid and Remote Work Policy"
    with pytest.raises(ReaderError, match="ran out of memory or crashed|needs more memory"):
        read_isolated(data, "policy.docx", max_bytes=None, archive=ArchiveLimits(), memory_mb=40)
