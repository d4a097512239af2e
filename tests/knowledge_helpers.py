"""Shared pieces of the knowledge-base tests: the local model fixture, test doubles, PDF files."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import numpy as np

from storage.embeddings import Embedder, make_embedder


def load_local_embedder() -> Embedder:
    """The real all-MiniLM-L6-v2; storage caches the model, so it loads once per session."""
    embedder = make_embedder("local")
    assert embedder is not None
    return embedder


class HashEmbedder:
    """Test double for an external model: deterministic bag-of-words vectors, no weights.

    ``fail_after`` makes it raise on that many-th call, like a model server dying mid-run.
    """

    def __init__(self, *, dimension: int = 64, fail_after: int | None = None) -> None:
        self.name = "test:hash"
        self.dimension = dimension
        self.fail_after = fail_after
        self.calls = 0
        self.texts_embedded = 0

    def embed(self, texts: list[str]) -> np.ndarray:
        self.calls += 1
        if self.fail_after is not None and self.calls > self.fail_after:
            raise RuntimeError("model server went away")
        self.texts_embedded += len(texts)
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in re.findall(r"[a-z0-9]+", text.lower()):
                bucket = int(hashlib.md5(word.encode()).hexdigest(), 16) % self.dimension
                out[row, bucket] += 1.0
            norm = float(np.linalg.norm(out[row])) or 1.0
            out[row] /= norm
        return out


def write_text_pdf(path: Path, lines: list[str]) -> Path:
    """A minimal one-page PDF whose text pypdf can extract (Helvetica, one line per entry)."""
    escaped = [line.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)") for line in lines]
    content = "BT /F1 12 Tf 72 720 Td 16 TL " + " ".join(f"({line}) Tj T*" for line in escaped)
    content += " ET"
    objects = [
        "<< /Type /Catalog /Pages 2 0 R >>",
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        "/Resources << /Font << /F1 5 0 R >> >> >>",
        f"<< /Length {len(content)} >>\nstream\n{content}\nendstream",
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = b"%PDF-1.4\n"
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n{body}\nendobj\n".encode("latin-1")
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += "".join(f"{offset:010d} 00000 n \n" for offset in offsets).encode()
    out += (
        f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    )
    path.write_bytes(out)
    return path


def write_blank_pdf(path: Path) -> Path:
    """A valid PDF with one empty page: no text to extract (like a scan)."""
    from pypdf import PdfWriter

    writer = PdfWriter()
    writer.add_blank_page(width=612, height=792)
    with path.open("wb") as handle:
        writer.write(handle)
    return path


def write_docs(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        target = root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    return root
