"""Builders for test documents in every supported format (made at run time, not stored)."""

from __future__ import annotations

import io
import zipfile

ARTICLE_HTML = """<!doctype html>
<html lang="en"><head>
<meta charset="utf-8">
<title>Harbour bridge reopens after repairs | The Coastal Gazette</title>
<meta property="og:title" content="Harbour bridge reopens after repairs">
<meta property="og:site_name" content="The Coastal Gazette">
<meta name="author" content="Jane Keller">
<meta property="article:published_time" content="2025-03-14T08:00:00Z">
<script>window.tracker = function() { document.write("<b>ads</b>"); };</script>
<style>body { font-family: serif; }</style>
</head><body>
<nav><a href="/">Home</a> <a href="/sport">Sport</a> <a href="/weather">Weather</a></nav>
<article>
<h1>Harbour bridge reopens after repairs</h1>
<p>The Harbour Bridge in Port Elmsley reopened to traffic on Friday after eleven months of
repairs that cost 48 million dollars, the city's transport department said.</p>
<p>Engineers replaced 312 steel cables and resurfaced the deck. Mayor Ilse Brandvold said the
work was finished three weeks ahead of schedule and below the approved budget.</p>
<p>Commuters had faced detours of up to forty minutes while the bridge was closed. Ferry
operators, who carried extra passengers during the closure, said they would return to their
normal timetable next month.</p>
</article>
<footer>Copyright The Coastal Gazette. <a href="/privacy">Privacy</a></footer>
<script>console.log("tracking");</script>
</body></html>
"""


def pdf_bytes(lines: list[str], title: str = "") -> bytes:
    """A minimal one-page PDF with a real text layer (Helvetica, one line per entry)."""

    def esc(s: str) -> str:
        return s.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")

    ops = ["BT", "/F1 11 Tf", "72 740 Td"]
    for line in lines:
        ops += [f"({esc(line)}) Tj", "0 -15 Td"]
    ops.append("ET")
    stream = "\n".join(ops).encode("latin-1")
    info = f"<< /Title ({esc(title)}) >>".encode("latin-1")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        info,
    ]
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n" % number + body + b"\nendobj\n")
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    for offset in offsets:
        out.write(b"%010d 00000 n \n" % offset)
    out.write(
        b"trailer\n<< /Size %d /Root 1 0 R /Info 6 0 R >>\nstartxref\n%d\n%%%%EOF\n"
        % (len(objects) + 1, xref)
    )
    return out.getvalue()


def docx_bytes(title: str, paragraphs: list[str]) -> bytes:
    import docx

    document = docx.Document()
    document.core_properties.title = title
    document.add_heading(title, level=1)
    for paragraph in paragraphs:
        document.add_paragraph(paragraph)
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def zip_bomb_docx() -> bytes:
    """A zip named .docx whose document part inflates to ~300 MB."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("[Content_Types].xml", "<Types/>")
        zf.writestr("word/document.xml", b"\0" * (300 * 1024 * 1024))
    return buffer.getvalue()
