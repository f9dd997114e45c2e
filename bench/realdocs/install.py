"""Install the real-docs corpus: the English Apache HTTP Server manual from Debian's apache2-doc.

Usage (from the repository root):

    python bench/realdocs/install.py [--dest DIR]

DIR defaults to `.cache/realdocs/apache-manual` under the repository root.

If /usr/share/doc/apache2-doc/manual is missing, the script first runs
`apt-get install -y --no-install-recommends apache2-doc` (as root; without
--no-install-recommends apt would also install the apache2 server, which is only recommended).

It then copies the English HTML pages into DIR as plain `.html` files, keeping the manual's
sub-folders (mod/, programs/, howto/, ...) so that paths such as `mod/core.html` match the
`sources` in questions.jsonl. Images, CSS, JS and other languages are skipped, and so is any page
whose `<html lang="...">` is not English: Debian 12's 2.4.71 package ships six Brazilian
Portuguese pages under `manual/en/` (bind.html, filter.html, install.html, invoking.html,
new_features_2_4.html, upgrading.html). Running it again copies only pages that are missing or
changed, and prints the page count either way.

Debian 12 keeps one folder per language (`manual/en/mod/core.html`; other languages symlink to
`en/` where untranslated). The upstream layout with content-negotiated variants
(`manual/mod/core.html.en`, `core.html.fr`, ...) is handled too, and gzipped pages
(`.html.gz`, `.html.en.gz`) are decompressed.
"""

from __future__ import annotations

import argparse
import gzip
import re
import shutil
import subprocess
import sys
from pathlib import Path

MANUAL = Path("/usr/share/doc/apache2-doc/manual")
_LANG = re.compile(rb'<html[^>]*\blang="([^"]+)"', re.I)
DEFAULT_DEST = Path(__file__).resolve().parents[2] / ".cache/realdocs/apache-manual"


def ensure_package() -> None:
    if MANUAL.is_dir():
        return
    command = ["apt-get", "install", "-y", "--no-install-recommends", "apache2-doc"]
    print(f"{MANUAL} is missing: running `{' '.join(command)}` ...", flush=True)
    try:
        proc = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    except OSError as exc:
        sys.exit(f"error: could not run apt-get ({exc}); install apache2-doc by hand")
    if proc.returncode != 0 or not MANUAL.is_dir():
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        sys.exit(f"error: `{' '.join(command)}` failed (exit {proc.returncode}; root? `apt-get update`?): {last}")


def english_pages() -> dict[str, Path]:
    """Map each English page's path relative to the manual root (e.g. 'mod/core.html') to its file."""
    pages: dict[str, Path] = {}
    root = MANUAL / "en"
    if root.is_dir():  # Debian layout: manual/en/...
        for ext in (".html", ".html.gz"):
            for f in root.rglob("*" + ext):
                pages.setdefault(f.relative_to(root).as_posix().removesuffix(".gz"), f)
    else:  # upstream layout: manual/.../page.html.en
        for ext in (".html.en", ".html.en.gz"):
            for f in MANUAL.rglob("*" + ext):
                rel = f.relative_to(MANUAL).as_posix()
                pages.setdefault(rel[: rel.index(".html") + len(".html")], f)
    return dict(sorted(pages.items()))


def read(path: Path) -> bytes:
    data = path.read_bytes()
    return gzip.decompress(data) if path.name.endswith(".gz") else data


def language(data: bytes) -> str:
    m = _LANG.search(data[:4096])
    return m.group(1).decode("ascii", "replace").lower() if m else "en"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dest", type=Path, default=DEFAULT_DEST, help=f"target folder (default {DEFAULT_DEST})")
    dest = parser.parse_args().dest.resolve()

    ensure_package()
    pages = english_pages()
    if not pages:
        sys.exit(f"error: no English HTML pages found under {MANUAL}")
    copied, foreign = 0, []
    for rel, src in pages.items():
        target = dest / rel
        data = read(src)
        if not language(data).startswith("en"):
            foreign.append(f"{rel} ({language(data)})")
            continue
        if target.is_file() and target.read_bytes() == data:
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(".tmp")
        tmp.write_bytes(data)
        shutil.move(tmp, target)
        copied += 1
    if foreign:
        print(f"skipped {len(foreign)} pages that are not in English: {', '.join(foreign)}")
    total = len(pages) - len(foreign)
    print(f"{total} English pages in {dest} ({copied} copied, {total - copied} already there)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
