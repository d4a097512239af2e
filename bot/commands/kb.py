"""`supportbot ingest`, `supportbot kb search|stats` and `supportbot eval`.

Thin CLI over storage.knowledge: settings pick the URI and embedder, storage errors become the
project's one-line errors (KnowledgeBaseError / IngestError / ConfigError).
"""

from __future__ import annotations

import json
import logging
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from bot import texts
from bot.commands import load_settings
from bot.doc_links import DocsLinks
from bot.errors import ConfigError, IngestError, KnowledgeBaseError
from storage.passages import breadcrumb

if TYPE_CHECKING:
    from bot.config import Settings

log = logging.getLogger(__name__)

SAMPLE_DOCS = Path(__file__).resolve().parent.parent / "sample_docs"
EMBEDDER_CHOICES = ("auto", "openai", "local", "none")
SNIPPET_CHARS = 300

kb_app = typer.Typer(help="Search and inspect the knowledge base.", no_args_is_help=True)


def open_knowledge_base(
    embedder_name: str | None = None, *, settings: Settings | None = None, **options: Any
) -> Any:
    """The configured KnowledgeBase (settings: SUPPORTBOT_KB_URI, SUPPORTBOT_EMBEDDER, OPENAI_*).
    ``settings``: those the command loaded already (else they are loaded here)."""
    from storage.embeddings import make_embedder
    from storage.knowledge import KnowledgeBase

    settings = settings or load_settings()
    name = embedder_name or settings.embedder
    if name not in EMBEDDER_CHOICES:
        raise ConfigError(f"--embedder must be one of {', '.join(EMBEDDER_CHOICES)}")
    key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else None
    try:
        embedder = make_embedder(
            name,
            openai_api_key=key,
            openai_base_url=settings.openai_base_url,
            openai_model=settings.openai_embedding_model,
            openai_max_retry_wait=settings.openai_max_retry_wait,
        )
    except ValueError as exc:
        raise ConfigError(f"SUPPORTBOT_EMBEDDER: {exc}") from None
    with storage_errors():
        return KnowledgeBase.open(settings.kb_uri, embedder, **options)


@contextmanager
def storage_errors() -> Iterator[None]:
    """Storage exceptions become the CLI's one-line errors."""
    from storage.knowledge import IngestInputError, KnowledgeError

    try:
        yield
    except IngestInputError as exc:
        raise IngestError(str(exc)) from None
    except KnowledgeError as exc:
        raise KnowledgeBaseError(str(exc)) from None


def hit_json(hit: Any, links: DocsLinks | None = None) -> dict[str, Any]:
    """The stable ``kb search --json`` object (documented in docs/knowledge-base.md). With
    SUPPORTBOT_DOCS_URL set (``links``), also ``url``: the page the passage is cited by, or
    null; without it the object is exactly as before."""
    found = {
        "source": hit.source,
        "title": hit.title,
        "heading": hit.heading,
        "snippet": hit.snippet(SNIPPET_CHARS),
        "score": round(float(hit.score), 6),
    }
    if links:
        from bot.tools import published_url

        found["url"] = published_url(hit, links)
    return found


def ingest(
    paths: Annotated[
        list[str] | None,
        typer.Argument(
            help="Docs folders or files, or the http(s) URL of a published docs site.",
            metavar="PATH_OR_URL",
        ),
    ] = None,
    prune: Annotated[
        bool, typer.Option("--prune", help="Remove chunks of files not found in PATHs.")
    ] = False,
    embedder: Annotated[
        str | None, typer.Option(help="auto | openai | local | none (default: settings).")
    ] = None,
    sample: Annotated[
        bool, typer.Option("--sample", help="Ingest the bundled sample docs.")
    ] = False,
    recreate: Annotated[
        bool, typer.Option("--recreate", help="Rebuild from scratch (e.g. new embedder).")
    ] = False,
    max_file_mb: Annotated[
        float, typer.Option(help="Skip files larger than this many MB.", min=0.001)
    ] = 10.0,
    max_pages: Annotated[
        int, typer.Option(help="Fetch at most this many pages of each docs site URL.", min=1)
    ] = 500,
    every: Annotated[
        str | None,
        typer.Option(
            help="Keep running: ingest again every DURATION (30m, 6h, 1d), e.g. to follow a "
            "docs site. A failed round is reported and retried soon (at most twice); the next "
            "one runs on time.",
            metavar="DURATION",
        ),
    ] = None,
) -> None:
    """Read docs (md, rst, adoc, ipynb, txt, html, pdf; folders, files or a docs site's URL),
    chunk, embed new or changed chunks, index. A site's pages are cited by their URLs."""
    wanted = list(paths or [])
    if sample:
        if not SAMPLE_DOCS.is_dir():
            raise IngestError(texts.KB_SAMPLE_MISSING)
        wanted.append(str(SAMPLE_DOCS))
    if not wanted:
        raise IngestError(texts.KB_NO_PATHS)
    interval = parse_interval(every) if every is not None else None
    max_bytes = int(max_file_mb * 1024 * 1024)
    settings = load_settings()
    kb = open_knowledge_base(embedder, settings=settings, max_file_bytes=max_bytes)

    if interval is None:
        also = learned_answers_root(settings, wanted)
        with _other_hosts_kept_out(settings, kb.uri):
            _ingest_once(kb, wanted, also, prune=prune, recreate=recreate, max_pages=max_pages)
        return
    from bot.commands.every import run_every

    rebuilt = False  # --recreate rebuilds once, not every round

    def one_round() -> None:
        nonlocal rebuilt
        rebuild = recreate and not rebuilt
        also = learned_answers_root(settings, wanted)  # answers approved since the last round
        with _other_hosts_kept_out(settings, kb.uri):
            _ingest_once(kb, wanted, also, prune=prune, recreate=rebuild, max_pages=max_pages)
        rebuilt = True

    run_every(interval, one_round)


def parse_interval(text: str) -> float:
    """``30m``, ``6h``, ``1d`` in seconds; a ConfigError naming the option otherwise."""
    from bot.commands.every import parse_duration

    try:
        return parse_duration(text)
    except ValueError as exc:
        raise ConfigError(f"--every: {exc}") from None


def learned_answers_root(settings: Settings, wanted: list[str]) -> Path | None:
    """The folder of approved learned answers (SUPPORTBOT_LEARNED_DIR), first brought up to date
    from the database, when it holds any and the ingest does not name it: they belong to the
    knowledge base whatever docs an ingest reads, and without them ``--prune`` and
    ``--recreate`` would drop them."""
    from bot.learning import LEARNED_FOLDER

    root = Path(settings.learned_dir)
    refresh_learned_folder(settings, root)
    if not (root / LEARNED_FOLDER).is_dir():
        return None
    named = {Path(item).resolve() for item in wanted if not _is_url(item)}
    return None if root.resolve() in named else root


def refresh_learned_folder(settings: Settings, root: Path) -> None:
    """Write the approved answers this machine's folder lacks (bot.learning.write_approved). A
    SQLite file that does not exist yet, or a database never migrated, holds none; a database
    that cannot be read is one warning, and the folder is ingested as it is."""
    import asyncio

    from sqlalchemy.exc import SQLAlchemyError

    from bot.learning import write_approved
    from storage import learned
    from storage.db import Database

    sqlite = settings.sqlite_path
    if settings.database_url.startswith("sqlite") and (sqlite is None or not sqlite.is_file()):
        return  # not created here (or in memory): nothing was approved through it

    async def refresh() -> int:
        db = Database(settings.database_url)
        try:
            if not await learned.queue_exists(db):
                return 0
            return await write_approved(db, root)
        finally:
            await db.dispose()

    try:
        written = asyncio.run(refresh())
    except (SQLAlchemyError, OSError) as exc:
        log.warning("learned answers not read from the database: %s", exc)
        typer.echo(texts.kb_learned_not_refreshed(type(exc).__name__, str(root)), err=True)
        return
    if written:
        typer.echo(texts.kb_learned_refreshed(written, str(root)), err=True)


@contextmanager
def _other_hosts_kept_out(settings: Settings, uri: str) -> Iterator[None]:
    """One ingest at a time among the hosts sharing this PostgreSQL database (the folder's own
    lock, taken by the ingest, reaches one host only)."""
    from storage.ingest_lock import database_ingest_lock

    with storage_errors(), database_ingest_lock(settings.database_url, uri, _not_locked):
        yield


def _not_locked(reason: str) -> None:
    """A database that cannot be reached is one warning: the docs are still brought up to date,
    as before the lock existed."""
    log.warning("ingest not locked against other hosts: %s", reason)
    typer.echo(texts.kb_not_locked_for_other_hosts(reason), err=True)


def _ingest_once(
    kb: Any,
    wanted: list[str],
    also: Path | None,
    *,
    prune: bool,
    recreate: bool,
    max_pages: int,
) -> None:
    """One ingest of ``wanted`` (folders, files, site URLs), plus the ``also`` folder."""
    max_bytes = kb.max_file_bytes
    with tempfile.TemporaryDirectory(prefix="supportbot-crawl-") as fetched_into:
        roots = [
            _fetch_site(item, Path(fetched_into) / str(n), max_pages, max_bytes)
            if _is_url(item)
            else Path(item)
            for n, item in enumerate(wanted)
        ] + ([also] if also is not None else [])
        with storage_errors():
            report = kb.ingest(roots, prune=prune, progress=sys.stderr.isatty(), recreate=recreate)
    for line in skipped_lines(report.skipped):
        typer.echo(line, err=True)
    for warning in report.warnings:
        typer.echo(texts.kb_file_warning(warning), err=True)
    for path, lines, kinds in report.redacted:
        typer.echo(texts.kb_redacted(str(path), lines, kinds), err=True)
    if report.not_found:
        typer.echo(texts.kb_not_found(len(report.not_found), wanted), err=True)
    typer.echo(
        texts.kb_ingest_summary(
            files=report.files,
            added=report.chunks_added,
            unchanged=report.chunks_unchanged,
            removed=report.chunks_removed,
            skipped=report.skipped_count,
            embedded=report.embedded,
            seconds=report.seconds,
        )
    )


def skipped_lines(skipped: list[Any]) -> list[str]:
    """One line per skipped file, except that files skipped for their type are one line per
    type: a docs folder's images and stylesheets were a screenful of warnings."""
    by_reason: dict[str, list[str]] = {}
    for item in skipped:
        by_reason.setdefault(item.reason, []).append(str(item.path))
    lines = []
    for reason, paths in by_reason.items():
        if len(paths) > 1 and reason.startswith("unsupported file type"):
            lines.append(texts.kb_skipped_of_type(len(paths), reason, paths[0]))
        else:
            lines += [texts.kb_skipped_file(path, reason) for path in paths]
    return lines


def _is_url(item: str) -> bool:
    return item.startswith(("http://", "https://"))


def _fetch_site(url: str, folder: Path, max_pages: int, max_bytes: int) -> Any:
    """A docs site's pages, fetched into ``folder`` (storage/crawl.py); one line says how many."""
    from storage.crawl import CrawlError, crawl

    folder.mkdir(parents=True)
    terminal = sys.stderr.isatty()

    def fetched(pages: int) -> None:
        typer.echo(f"\rFetching {url}: {pages} page(s)", err=True, nl=False)

    try:
        site = crawl(
            url,
            folder,
            max_pages=max_pages,
            max_bytes=max_bytes,
            progress=fetched if terminal else None,
        )
    except CrawlError as exc:
        raise IngestError(str(exc)) from None
    finally:
        if terminal:
            typer.echo("", err=True)
    typer.echo(texts.kb_fetched_site(url, len(site.files), len(site.skipped)), err=True)
    return site


@kb_app.command("search")
def kb_search(
    question: Annotated[str, typer.Argument(help="What to look for.", metavar="QUESTION")],
    k: Annotated[int, typer.Option("-k", help="How many sources.", min=1, max=100)] = 5,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON array of hits.")] = False,
    mode: Annotated[str, typer.Option(help="hybrid | fts | vector")] = "hybrid",
) -> None:
    """Show the best passage of the best matching sources."""
    if not question.strip():
        raise ConfigError(texts.KB_SEARCH_EMPTY)
    settings = load_settings()
    kb = open_knowledge_base(settings=settings)
    with storage_errors():
        try:
            hits = kb.search(question, k=k, mode=mode)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
    if as_json:
        links = settings.docs_links
        found = [hit_json(hit, links) for hit in hits]
        typer.echo(json.dumps(found, ensure_ascii=False, indent=2))
        return
    if not hits:
        typer.echo(texts.KB_NO_HITS)
        return
    for rank, hit in enumerate(hits, start=1):
        place = breadcrumb(hit.title, hit.heading)
        typer.echo(f"{rank}. [{hit.score:.4f}] {hit.source} — {place}")
        typer.echo(f"   {hit.snippet(SNIPPET_CHARS)}")


@kb_app.command("stats")
def kb_stats(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Files, chunks, embedder, dimension, index state and size on disk."""
    from dataclasses import asdict

    kb = open_knowledge_base()
    with storage_errors():
        stats = kb.stats()
    if as_json:
        typer.echo(json.dumps(asdict(stats), indent=2))
        return
    size = f"{stats.size_bytes / 1e6:.1f} MB" if stats.size_bytes is not None else "unknown"
    typer.echo(f"knowledge base: {stats.uri}")
    typer.echo(f"files: {stats.files}   chunks: {stats.chunks}   size: {size}")
    typer.echo(f"embedder: {stats.embedder or 'none (BM25 only)'}   dimension: {stats.dimension}")
    fts = "yes" if stats.fts_index else "no"
    vector = stats.vector_index or "none (flat scan)"
    typer.echo(f"indexes: full-text {fts}, vector {vector}; unindexed rows {stats.unindexed_rows}")


def eval_command(
    file: Annotated[
        Path, typer.Argument(help="JSON lines: {question, gold: [sources], ...}.", metavar="FILE")
    ],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    mode: Annotated[str, typer.Option(help="hybrid | fts | vector | all")] = "hybrid",
    split: Annotated[str, typer.Option(help="dev | heldout | all")] = "all",
    answers: Annotated[
        bool,
        typer.Option("--answers", help="Also run the offline answerer: answer-or-refuse."),
    ] = False,
    fresh_batch: Annotated[
        int | None,
        typer.Option(
            "--fresh-batch",
            help="Score only this held-out batch; the batches kept unscored for the next "
            "change (bench/eval/README.md) are otherwise left out.",
        ),
    ] = None,
) -> None:
    """Recall@5, MRR@10 and two-page coverage over distinct sources, per question kind."""
    from bot.kb_eval import evaluate, kept_for_this_run, load_questions

    if not file.is_file():
        raise IngestError(f"{file} does not exist")
    try:
        questions = [
            q for q in load_questions(file, split) if kept_for_this_run(q.batch, fresh_batch)
        ]
    except ValueError as exc:
        raise IngestError(str(exc)) from None
    if not questions:
        raise IngestError(f"{file} has no questions to score (split {split})")
    modes = ["hybrid", "fts", "vector"] if mode == "all" else [mode]
    kb = open_knowledge_base()
    with storage_errors():
        warn_about_unknown_gold(questions, kb.sources())
    if kb.embedder is None:
        modes = [m for m in modes if m == "fts"] or ["fts"]
    with storage_errors():
        try:
            results = [evaluate(kb, questions, mode=m) for m in modes]
            decisions = _answer_or_refuse(kb, questions) if answers else None
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
    if as_json:
        data: Any = [r.as_dict() for r in results]
        if decisions is not None:
            data = {"retrieval": data, "answers": asdict_(decisions)}
        typer.echo(json.dumps(data, indent=2))
        return
    answerable = sum(q.answerable for q in questions)
    typer.echo(
        f"{len(questions)} questions ({answerable} answerable), split {split}, "
        f"knowledge base {kb.uri}"
    )
    typer.echo(
        f"{'mode':<8} {'kind':<12} {'n':>3} {'recall@5':>9} {'MRR@10':>7} {'both@10':>8} "
        f"{'p50 ms':>7} {'p95 ms':>7}"
    )
    for r in results:
        rows = [("all", r), *sorted(r.by_kind.items())] if len(r.by_kind) > 1 else [("all", r)]
        for kind, scores in rows:
            both = "-" if scores.both_at_10 is None else f"{scores.both_at_10:.3f}"
            timing = f"{r.latency_p50_ms:>7.1f} {r.latency_p95_ms:>7.1f}" if kind == "all" else ""
            typer.echo(
                f"{r.mode:<8} {kind:<12} {scores.questions:>3} {scores.recall_at_5:>9.3f} "
                f"{scores.mrr_at_10:>7.3f} {both:>8} {timing}".rstrip()
            )
    if decisions is not None:
        typer.echo(
            f"answer-or-refuse: {decisions.accuracy:.1%} correct over {decisions.questions}; "
            f"unanswerable refused {_pct(decisions.refused_unanswerable)}, answerable answered "
            f"{_pct(decisions.answered_answerable)}; per kind: "
            + ", ".join(f"{k} {v:.0%}" for k, v in decisions.by_kind.items())
        )


def warn_about_unknown_gold(questions: list[Any], sources: list[str]) -> None:
    """A gold source the knowledge base does not hold (a path written without its folder,
    a file not ingested) scores its questions 0 with no hint why: name each on stderr, with
    the stored source of the same file name when there is one."""
    known = set(sources)
    by_name: dict[str, list[str]] = {}
    for source in sources:
        by_name.setdefault(source.rsplit("/", 1)[-1], []).append(source)
    for gold in sorted({g for q in questions for g in q.gold} - known):
        similar = by_name.get(gold.rsplit("/", 1)[-1], [])
        typer.echo(texts.eval_unknown_gold(gold, similar[0] if similar else None), err=True)


def _answer_or_refuse(kb: Any, questions: list[Any]) -> Any:
    import asyncio

    from bot.agent import AgentResult, OfflineAgent, final_result
    from bot.kb_eval import decide_all, decision_scores

    agent = OfflineAgent(kb)

    async def answer(question: str) -> AgentResult:
        return await final_result(agent, question)

    return decision_scores(asyncio.run(decide_all(answer, questions)))


def asdict_(value: Any) -> dict[str, Any]:
    from dataclasses import asdict

    return asdict(value)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def register(app: typer.Typer, run_app: typer.Typer) -> None:
    """Add this group's commands to the root app (and to `supportbot run`)."""
    app.command("ingest")(ingest)
    app.command("eval")(eval_command)
    app.add_typer(kb_app, name="kb")
