"""Page titles keep acronyms: a title the page writes is kept as written, and one made from a
file name writes known acronyms in capitals ("SSL setup", not "Ssl setup")."""

from __future__ import annotations

from pathlib import Path

from storage.knowledge import KnowledgeBase

PAGES = {
    "ssl-and-tls_setup.md": "Certificates are renewed every 60 days by the agent itself.\n",
    "http-api-cli.html": "<p>The command line tool talks to the HTTP API with your token.</p>",
    "OAuth_flow.rst": "The redirect URI must match the one registered for the client.\n",
    "getting-started.md": "Install the agent, then run the setup wizard once.\n",
    "certs.md": "# Rotating TLS certificates for the Api gateway\n\nRotate them yearly.\n",
}


def test_titles_from_file_names_keep_acronyms_and_written_titles_stay(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    for name, text in PAGES.items():
        (docs / name).write_text(text, encoding="utf-8")
    kb = KnowledgeBase.open(str(tmp_path / "kb"), None)
    kb.ingest([docs])
    titles = {hit.source: hit.title for hit in kb.search("agent token client certificates", k=20)}
    assert titles == {
        "ssl-and-tls_setup.md": "SSL and TLS setup",
        "http-api-cli.html": "HTTP API CLI",
        "OAuth_flow.rst": "OAuth flow",
        "getting-started.md": "Getting started",
        "certs.md": "Rotating TLS certificates for the Api gateway",
    }
