"""DOCX-shaped ZIP archives that inflate far beyond their size (made on the fly, cached per session)."""

from __future__ import annotations

import zipfile
from pathlib import Path

CONTENT_TYPES = (b'<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/'
                 b'content-types"><Default Extension="xml" ContentType="application/xml"/></Types>')


def docx_bomb(path: Path, inflated_mb: int) -> Path:
    """A .docx whose word/document.xml inflates to `inflated_mb` MB of zeros (about 1000:1)."""
    if path.exists():
        return path
    block = b"\0" * (1 << 20)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        archive.writestr("[Content_Types].xml", CONTENT_TYPES)
        with archive.open("word/document.xml", "w", force_zip64=True) as member:
            for _ in range(inflated_mb):
                member.write(block)
    return path
