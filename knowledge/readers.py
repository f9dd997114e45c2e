"""Turn one document file into Markdown-ish text sections, with one clear error per unreadable file.

Every reader returns headings as '# ' lines so a Markdown chunker keeps heading paths, and every
failure, including ones raised inside pypdf / python-docx / lxml, surfaces as a ReaderError whose
message is one short line a person can act on.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
import zipfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import charset_normalizer
from bs4 import BeautifulSoup, NavigableString, Tag
from bs4.element import Comment, Declaration, Doctype, ProcessingInstruction

from bot.core.errors import ReaderError, UnsupportedType


@dataclass
class Section:
    text: str  # Markdown-ish: headings are '# ' lines so a Markdown chunker keeps heading paths
    page: int | None = None  # 1-based PDF page number, else None


@dataclass
class ReadResult:
    title: str  # first H1 / <title> / DOCX title or first heading / PDF metadata title / file stem
    sections: list[Section]
    kind: str  # 'markdown' | 'text' | 'html' | 'pdf' | 'docx' | 'csv'


_KINDS = {".md": "markdown", ".markdown": "markdown", ".txt": "text", ".text": "text", ".rst": "text",
          ".html": "html", ".htm": "html", ".pdf": "pdf", ".docx": "docx", ".csv": "csv"}
SUPPORTED_EXTENSIONS: frozenset[str] = frozenset(_KINDS)
_TEXTUAL = {"markdown", "text", "html", "csv"}
_MB = 1024 * 1024
CSV_ROWS_PER_SECTION = 40


@dataclass(frozen=True)
class ArchiveLimits:
    """How far a DOCX (a ZIP archive) may inflate: in total, and as a ratio to its compressed size.
    Checked from the archive's directory before anything is decompressed; Python's zipfile then never
    returns more than a member's declared size, so the declared sizes bound the memory used."""

    max_unzipped_bytes: int = 200 * 1024 * 1024
    max_ratio: float = 100.0
    max_members: int = 10_000


def check_archive(data: bytes, limits: ArchiveLimits) -> None:
    """ReaderError for a ZIP whose members would inflate past the limits (a "zip bomb")."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            members = archive.infolist()
    except zipfile.BadZipFile as exc:
        raise ReaderError("corrupt DOCX: not a ZIP archive") from exc
    if len(members) > limits.max_members:
        raise ReaderError(f"archive has {len(members):,} members (limit {limits.max_members:,})")
    total = sum(m.file_size for m in members)
    packed = max(sum(m.compress_size for m in members), 1)
    if total > limits.max_unzipped_bytes:
        raise ReaderError(f"archive would inflate to {total / _MB:,.0f} MB, over the "
                          f"{limits.max_unzipped_bytes / _MB:,.0f} MB limit (a zip bomb?)")
    if total / packed > limits.max_ratio and total > _MB:
        raise ReaderError(f"archive inflates {total / packed:,.0f} times, over the {limits.max_ratio:g}x "
                          "limit (a zip bomb?)")


def read_file(path: Path, *, max_bytes: int | None = None) -> ReadResult:
    """Read one file from disk; raises ReaderError (or UnsupportedType) with a one-line reason."""
    path = Path(path)
    kind = _kind_for(path.name)
    try:
        # Check the size before reading so a huge file is refused without loading it.
        if max_bytes is not None:
            _check_size(path.stat().st_size, max_bytes)
        data = path.read_bytes()
    except OSError as exc:
        raise ReaderError(f"cannot open file ({exc.strerror or type(exc).__name__})") from exc
    return _read(data, kind, path.stem, max_bytes)


def read_bytes(data: bytes, name: str, *, max_bytes: int | None = None,
               archive: ArchiveLimits | None = None) -> ReadResult:
    """Read an uploaded file held in memory; `name` supplies the extension and the fallback title."""
    return _read(data, _kind_for(name), Path(name).stem, max_bytes, archive or ArchiveLimits())


def _kind_for(name: str) -> str:
    ext = Path(name).suffix.lower()
    if ext not in _KINDS:
        raise UnsupportedType(f"unsupported file type {ext or '(no extension)'}")
    return _KINDS[ext]


def _check_size(size: int, max_bytes: int | None) -> None:
    def human(n: float) -> str:
        unit, div = ("MB", _MB) if n >= _MB else ("KB", 1024) if n >= 1024 else ("bytes", 1)
        return f"{n / div:.1f}".removesuffix(".0") + " " + unit

    if max_bytes is not None and size > max_bytes:
        raise ReaderError(f"file is {human(size)}, over the {human(max_bytes)} limit")


def _read(data: bytes, kind: str, stem: str, max_bytes: int | None,
          archive: ArchiveLimits | None = None) -> ReadResult:
    _check_size(len(data), max_bytes)
    if not (data.strip() if kind in _TEXTUAL else data):
        raise ReaderError("empty file")
    if kind == "docx":
        check_archive(data, archive or ArchiveLimits())
    if kind in _TEXTUAL:
        _reject_binary(data)
    try:
        result = _READERS[kind](data, stem)
    except ReaderError:
        raise
    except Exception as exc:  # a library bug or odd input must not abort a whole ingest run
        raise ReaderError(f"cannot read {kind} file: {_short(exc)}") from exc
    result.sections = [s for s in result.sections if s.text.strip()]
    if not result.sections:
        raise ReaderError("empty file" if kind in {"markdown", "text"} else "no extractable text")
    result.title = result.title.strip() or stem
    return result


def _short(exc: BaseException) -> str:
    msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return msg if len(msg) <= 120 else msg[:117] + "..."


# --- plain text and Markdown -------------------------------------------------------------------

def _reject_binary(data: bytes) -> None:
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return  # UTF-16 text is full of NUL bytes by design
    sample = data[:8192]
    controls = sum(1 for b in sample if b < 32 and b not in (9, 10, 12, 13)) + sample.count(127)
    if b"\0" in sample or controls > len(sample) * 0.05:
        raise ReaderError("binary file with a text extension")


def _decode(data: bytes) -> str:
    """Text of a file in whatever encoding it was saved in: UTF-8 (with or without BOM) and UTF-16 with
    a BOM directly; anything else (cp1252, Latin-1, Shift-JIS, ...) as charset-normalizer detects it.
    Bytes that read as gibberish in every encoding are refused."""
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError as exc:
            raise ReaderError(f"not valid UTF-16 text (undecodable bytes at offset {exc.start})") from exc
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        offset = exc.start
    matches = charset_normalizer.from_bytes(data)
    best = matches.best()
    if best is None:
        raise ReaderError(f"not valid text in UTF-8 or any other encoding kbot recognises "
                          f"(undecodable bytes at offset {offset})")
    # Short Western text reads equally well as cp1250, cp1252 or Mac Roman; when cp1252 is among the
    # equally good readings, take it (the usual encoding of Windows documents, and the fallback browsers
    # use for unlabelled Western pages): otherwise 'Crème' would come out as 'Crčme'.
    for match in matches:
        if (match.chaos <= best.chaos + 0.01 and match.coherence >= best.coherence - 0.1
                and "cp1252" in match.could_be_from_charset):
            return data.decode("cp1252")
    return str(best)


_ATX = re.compile(r"^ {0,3}(#{1,6})\s+(.+?)\s*#*\s*$")
_UNDERLINE = re.compile(r"^ {0,3}(={3,}|-{3,})\s*$")
_NOT_SETEXT = ("#", "- ", "* ", "|", ">")  # a rule under these is a separator, not a heading underline
_FRONT_TITLE = re.compile(r"^title:\s*['\"]?(.+?)['\"]?\s*$", re.M)


def _normalize_headings(text: str, caps_headings: bool) -> tuple[str, str]:
    """Rewrite setext (and, for plain text, ALL-CAPS) headings as '#' lines; return (title, text)."""
    lines = text.split("\n")
    out: list[str] = []
    fence = False
    title = ""
    for i, line in enumerate(lines):
        s = line.strip()
        nxt = lines[i + 1].strip() if i + 1 < len(lines) else ""
        prev = out[-1].strip() if out else ""
        if s.startswith(("```", "~~~")):
            fence = not fence
        elif not fence and _UNDERLINE.match(line) and prev and not prev.startswith(_NOT_SETEXT):
            out[-1] = ("# " if s[0] == "=" else "## ") + prev
            title = title or (prev if s[0] == "=" else "")
            continue
        elif (not fence and caps_headings and not prev and not _UNDERLINE.match(nxt) and len(s) <= 80
              and sum(c.isalpha() for c in s) >= 3 and not any(c.islower() for c in s)):
            # Plain-text documents mark headings in capitals; the first such line names the document.
            first = not any(x.strip() for x in out)
            line = ("# " if first else "## ") + s
            title = title or (s if first else "")
        elif not fence and (m := _ATX.match(line)) and len(m.group(1)) == 1:
            title = title or m.group(2)
        out.append(line)
    return title, "\n".join(out)


def _read_markdown(data: bytes, stem: str, kind: str = "markdown") -> ReadResult:
    text = _decode(data).replace("\r\n", "\n").replace("\r", "\n")
    meta_title = ""
    if text.startswith("---\n") and (end := text.find("\n---", 4)) != -1:
        # YAML front matter is metadata, not content; keep only its title.
        m = _FRONT_TITLE.search(text[4:end])
        meta_title = m.group(1) if m else ""
        text = text[end + 4:].lstrip("\n")
    title, text = _normalize_headings(text, caps_headings=kind == "text")
    return ReadResult(title=meta_title or title, sections=[Section(text.strip())], kind=kind)


# --- HTML ----------------------------------------------------------------------------------------

_DROP_TAGS = ["script", "style", "noscript", "nav", "footer", "aside", "iframe", "svg", "template",
              "button", "select", "textarea", "input", "head", "link", "meta"]
_BOILERPLATE = re.compile(r"cookie|consent|gdpr|banner|breadcrumb|skip-?link|sidebar|popup|modal|newsletter|"
                          r"\bads?\b|advert|share-?buttons|site-?header|site-?footer", re.I)
_DROP_ROLES = {"navigation", "banner", "contentinfo", "complementary", "search", "dialog", "alertdialog"}
_BLOCK_TAGS = {"p", "div", "section", "article", "main", "body", "html", "blockquote", "dl", "dt", "dd",
               "figure", "figcaption", "address", "details", "summary", "header", "li", "hr", "form"}
_SKIP_STRINGS = (Comment, Declaration, Doctype, ProcessingInstruction)


def _ws(text: str) -> str:
    text = re.sub(r"\s+", " ", text).strip()
    return re.sub(r"\s+([,.;:!?)\]])", r"\1", re.sub(r"([(\[])\s+", r"\1", text))


def _is_boilerplate(el: Tag) -> bool:
    if el.name in ("html", "body", "main", "article"):
        return False
    marks = " ".join([el.get("id") or "", " ".join(el.get("class") or [])])
    return (el.get("role") in _DROP_ROLES or el.has_attr("hidden") or el.get("aria-hidden") == "true"
            or bool(marks.strip() and _BOILERPLATE.search(marks)))


def _html_blocks(root: Tag) -> list[str]:
    """Walk the DOM, emitting Markdown blocks; inline text accumulates until a block boundary."""
    blocks: list[str] = []
    inline: list[str] = []

    def flush() -> None:
        if text := _ws("".join(inline)):
            blocks.append(text)
        inline.clear()

    def walk(node: Tag) -> None:
        for child in node.children:
            if isinstance(child, _SKIP_STRINGS):
                continue
            if isinstance(child, NavigableString):
                inline.append(str(child))
                continue
            if not isinstance(child, Tag):
                continue
            name = child.name
            if name in ("br",):
                inline.append("\n")
            elif name in _BLOCK_TAGS or name in ("ul", "ol", "table", "pre") or re.fullmatch(r"h[1-6]", name):
                flush()
                if re.fullmatch(r"h[1-6]", name):
                    blocks.append("#" * int(name[1]) + " " + _ws(child.get_text(" ")))
                elif name in ("ul", "ol"):
                    blocks.append("\n".join(_list_lines(child, 0)))
                elif name == "table":
                    blocks.append(_table_text(child))
                elif name == "pre":
                    blocks.append("```\n" + child.get_text().strip("\n") + "\n```")
                else:
                    walk(child)
                flush()
            else:
                walk(child)

    walk(root)
    flush()
    return [b for b in blocks if b.strip("#` \n")]


def _list_lines(el: Tag, depth: int) -> list[str]:
    lines: list[str] = []
    for n, li in enumerate(el.find_all("li", recursive=False), 1):
        nested = [sub.extract() for sub in li.find_all(["ul", "ol"], recursive=False)]
        marker = f"{n}." if el.name == "ol" else "-"
        if text := _ws(li.get_text(" ")):
            lines.append("  " * depth + f"{marker} {text}")
        for sub in nested:
            lines.extend(_list_lines(sub, depth + 1))
    return lines


def _table_text(table: Tag) -> str:
    rows = [tr.find_all(["th", "td"], recursive=False) for tr in table.find_all("tr")]
    rows = [r for r in rows if r]
    cells = [[_ws(c.get_text(" ")) for c in r] for r in rows]
    header = bool(rows) and (all(c.name == "th" for c in rows[0]) or bool(rows[0][0].find_parent("thead")))
    return "\n".join(_rows_as_lines(cells, header=header))


def _rows_as_lines(rows: list[list[str]], header: bool) -> list[str]:
    """Header tables become 'Header: value; ...' lines so every row carries its own labels."""
    if not rows:
        return []
    if not header:
        return ["| " + " | ".join(r) + " |" for r in rows]
    head, lines = rows[0], []
    for row in rows[1:]:
        pairs = [f"{h}: {v}" if h else v for h, v in zip(head, row, strict=False) if v]
        pairs += [v for v in row[len(head):] if v]
        if pairs:
            lines.append("; ".join(pairs))
    return lines


def html_to_markdown(html: str | bytes) -> tuple[str, str]:
    """Return (title, markdown) for an HTML page, with navigation, scripts and cookie banners removed."""
    soup = BeautifulSoup(html, "lxml")
    title = _ws(soup.title.get_text()) if soup.title else ""
    for tag in soup.find_all(_DROP_TAGS):
        tag.decompose()
    for el in soup.find_all(["header", "form"]):
        # Site headers and search forms are chrome, but an article's own header holds its H1, and
        # some CMSs wrap the whole page in one <form>.
        keep = el.find_parent(["article", "main"]) or el.find(["main", "article", "h1"])
        if not el.decomposed and not keep:
            el.decompose()
    for el in soup.find_all(True):
        if not el.decomposed and _is_boilerplate(el):
            el.decompose()
    root = soup.find("main") or soup.find(attrs={"role": "main"}) or soup.body or soup
    blocks = _html_blocks(root)
    if not title and (h1 := soup.find("h1")):
        title = _ws(h1.get_text(" "))
    return title, "\n\n".join(blocks)


def _read_html(data: bytes, stem: str) -> ReadResult:
    # Bytes go to BeautifulSoup as-is so a <meta charset> other than UTF-8 is honoured.
    title, text = html_to_markdown(data)
    return ReadResult(title=title, sections=[Section(text)], kind="html")


# --- PDF -----------------------------------------------------------------------------------------

_NUMBERED = re.compile(r"^\d+(\.\d+)*\.?\s+[A-Z]")  # "2. Flights", "4.1 Scope": a heading, not a wrap


def _clean_pdf_page(text: str) -> list[str]:
    """Re-join lines that the PDF wrapped mid-paragraph and undo hyphenation at line ends."""
    raw = [re.sub(r"[ \t\u00a0]+", " ", ln).strip() for ln in text.splitlines()]
    width = max((len(ln) for ln in raw), default=0)
    out: list[str] = []
    prev_raw = ""
    for line in raw:
        if not line:
            if out and out[-1]:
                out.append("")
        elif out and out[-1] and re.search(r"[^\W\d_]-$", prev_raw) and line[0].islower():
            out[-1] = out[-1][:-1] + line
        elif (out and out[-1] and len(prev_raw) >= 0.7 * width and not prev_raw.endswith((".", ":", "!", "?"))
              and not (_NUMBERED.match(line) and len(line) < 0.5 * width)):
            out[-1] += " " + line
        else:
            out.append(line)
        prev_raw = line
    return out


def _strip_running_lines(pages: list[list[str]]) -> None:
    """Drop page headers/footers: first/last lines repeated (digits aside) on most pages."""
    if len(pages) < 2:
        return
    for pos in (0, -1):
        keys = Counter(re.sub(r"\d+", "#", p[pos]) for p in pages if p and len(p[pos]) <= 120)
        for key, count in keys.items():
            if count >= 2 and count > len(pages) / 2:
                for p in pages:
                    if p and re.sub(r"\d+", "#", p[pos]) == key:
                        p.pop(pos)


def _read_pdf(data: bytes, stem: str) -> ReadResult:
    from pypdf import PdfReader
    from pypdf.errors import DependencyError

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            # Many PDFs are "encrypted" only to restrict printing; an empty user password opens them.
            try:
                opened = reader.decrypt("")
            except DependencyError as exc:
                raise ReaderError("encrypted PDF (AES; reading it needs the 'cryptography' package)") from exc
            if not opened:
                raise ReaderError("encrypted PDF (password required)")
        n_pages = len(reader.pages)
    except ReaderError:
        raise
    except Exception as exc:
        hint = " (truncated file?)" if "EOF" in str(exc) else ""
        raise ReaderError(f"corrupt PDF: {_short(exc)}{hint}") from exc
    pages: list[list[str]] = []
    for i in range(n_pages):
        try:
            pages.append(_clean_pdf_page(reader.pages[i].extract_text() or ""))
        except Exception as exc:
            raise ReaderError(f"corrupt PDF: page {i + 1}: {_short(exc)}") from exc
    _strip_running_lines(pages)
    sections = [Section("\n".join(p).strip(), page=i) for i, p in enumerate(pages, 1) if "".join(p).strip()]
    if not sections:
        raise ReaderError("no extractable text (scanned PDF?)")
    try:
        title = str((reader.metadata or {}).get("/Title") or "")
        title = re.sub(r"^Microsoft \w+ - ", "", title)  # Office's PDF export puts the app name in front
    except Exception:  # a broken Info dictionary should not cost us the text
        title = ""
    return ReadResult(title=title, sections=sections, kind="pdf")


# --- DOCX ----------------------------------------------------------------------------------------

def _read_docx(data: bytes, stem: str) -> ReadResult:
    import docx
    from docx.table import Table
    from docx.text.paragraph import Paragraph

    try:
        doc = docx.Document(io.BytesIO(data))
    except zipfile.BadZipFile as exc:
        raise ReaderError("corrupt DOCX: not a ZIP archive") from exc
    except Exception as exc:
        raise ReaderError(f"corrupt DOCX: {_short(exc)}") from exc
    lines: list[str] = []
    first_heading = ""
    for block in doc.iter_inner_content():
        if isinstance(block, Table):
            rows = [[_ws(c.text) for c in r.cells] for r in block.rows]
            lines += ["", *_rows_as_lines(rows, header=True), ""]
            continue
        if not isinstance(block, Paragraph) or not (text := _ws(block.text)):
            continue
        style = (block.style.name if block.style is not None else "") or ""
        level = re.fullmatch(r"(?:Heading|heading)\s*(\d)", style)
        if style == "Title" or level:
            lines += ["", "#" * (int(level.group(1)) if level else 1) + " " + text, ""]
            first_heading = first_heading or text
        elif style.startswith("List") or block._p.pPr is not None and block._p.pPr.numPr is not None:
            lines.append(f"- {text}")
        else:
            lines += [text, ""]
    body = re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()
    if not body:
        raise ReaderError("no extractable text (empty document)")
    title = (doc.core_properties.title or "").strip() or first_heading
    return ReadResult(title=title, sections=[Section(body)], kind="docx")


# --- CSV -----------------------------------------------------------------------------------------

def _read_csv(data: bytes, stem: str) -> ReadResult:
    text = _decode(data)
    try:
        dialect: type[csv.Dialect] | csv.Dialect = csv.Sniffer().sniff(text[:16384], delimiters=",;\t|")
    except csv.Error:
        dialect = csv.excel  # sniffing fails on one-column files; a comma reader still reads them
    try:
        rows = [[c.strip() for c in r] for r in csv.reader(io.StringIO(text), dialect)]
    except csv.Error as exc:
        raise ReaderError(f"malformed CSV: {_short(exc)}") from exc
    rows = [r for r in rows if any(r)]
    if len(rows) < 2:
        raise ReaderError("no data rows in CSV (only a header or nothing)")
    lines = _rows_as_lines(rows, header=True)
    sections = [Section(f"# {stem}\n\n" + "\n".join(lines[i:i + CSV_ROWS_PER_SECTION]))
                for i in range(0, len(lines), CSV_ROWS_PER_SECTION)]
    return ReadResult(title=stem, sections=sections, kind="csv")


_READERS = {"markdown": _read_markdown, "text": lambda data, stem: _read_markdown(data, stem, "text"),
            "html": _read_html, "pdf": _read_pdf, "docx": _read_docx, "csv": _read_csv}
