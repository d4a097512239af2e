"""The knowledge base: docs chunked into one LanceDB table, searched by BM25 and vectors.

The only module that imports lancedb. One table, ``chunks``; the embedder's name and dimension
live in the table's schema metadata so vectors from another model are refused, not mixed.

Safety of ingest: new chunks are written (each write an atomic LanceDB commit) before stale ones
are deleted (one atomic delete), so an interrupted run leaves the previous content searchable.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import sys
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from storage.documents import (
    CHUNKER_VERSION,
    DEFAULT_MAX_FILE_BYTES,
    Chunk,
    FetchedPages,
    Found,
    SkippedFile,
    UnreadableFile,
    chunk_document,
    discover,
    read_document,
    redact_document,
)
from storage.embeddings import Embedder
from storage.ingest_lock import ingest_lock
from storage.kb_errors import KnowledgeError
from storage.lazyimport import defer_annotation_imports, defer_reexports, marker_only_overrides
from storage.lru import Lru
from storage.page_facts import NO_FACTS, PageFacts
from storage.passages import WINDOW_EMBEDDER_PREFIX, snippet_of, windows_of
from storage.queries import sub_queries
from storage.vocabulary import Vocabulary

log = logging.getLogger(__name__)

TABLE_NAME = "chunks"
META_EMBEDDER = b"supportbot.embedder"
META_DIMENSION = b"supportbot.dimension"
META_CHUNKER = b"supportbot.chunker"
WINDOWS_COLUMN = "window_vectors"
# storage.page_facts.PageFacts of each passage, encoded ("" or null: nothing to say). A table
# built before it gets the column (null) on its next ingest, without a rebuild.
LINKS_COLUMN = "links"
NO_EMBEDDER = "none"
SEARCH_MODES = ("hybrid", "fts", "vector")
RRF_K = 60
# Typo correction reads every indexed word once per process; beyond this many chunks that
# costs more than it is worth at start-up, and the search runs without it.
VOCABULARY_MAX_ROWS = 200_000
VOCABULARY_REFRESH_SECONDS = 30.0
# Replicas read while an ingest process writes: look for a newer version at most this often
# instead of on every query (LanceDB's read consistency interval, and how long the table's
# schema and indexes read for searching are trusted).
TABLE_REFRESH_SECONDS = 2.0
CANDIDATES_MIN = 20
CANDIDATES_PER_HIT = 4
DEFAULT_ANN_THRESHOLD = 20_000
# IVF_SQ (8-bit scalar quantisation) builds ~10x faster than IVF_PQ at the same recall once
# refine_factor re-ranks exactly (docs/bench-sections/knowledge.md); PQ keeps the index smaller.
ANN_INDEXES = ("IVF_SQ", "IVF_PQ")
DEFAULT_ANN_INDEX = "IVF_SQ"
EMBED_BATCH = 256
QUERY_CACHE_SIZE = 256  # questions (and their parts) embedded lately
WRITE_BATCH = 16_384
# Packages lancedb imports that only re-export a REST namespace client we never use: their
# names load on first use instead of at `import lancedb` (storage/lazyimport.py explains).
UNUSED_REEXPORTS = ("lance_namespace_urllib3_client", "lance_namespace_urllib3_client.models")
# ... and lance_namespace imports the client's models for its interface's annotations only.
ANNOTATION_ONLY_IMPORTS = {"lance_namespace": "lance_namespace_urllib3_client.models"}
RESULT_COLUMNS = ["chunk_id", "source", "title", "heading", "text"]
# A table this small has its passages held in memory for its current version (see _Passages):
# a query then returns row ids and scores only, and LanceDB's take of the candidates' columns
# (about half of a BM25 search's CPU) is skipped. Larger tables are searched as before.
PASSAGES_MAX_ROWS = 20_000
PASSAGES_MAX_BYTES = 16 * 2**20  # of Arrow data: text, titles, ids, window vectors


_RUST_LOCATION = re.compile(r",\s*/\S+\.rs:\d+:\d+")


class EmbedderMismatchError(KnowledgeError):
    """The table was built with another embedder (or dimension) than the one in use."""


class IngestInputError(KnowledgeError):
    """Nothing to ingest: a missing path, an empty folder, no readable documents."""


@dataclass(frozen=True)
class SearchHit:
    chunk_id: str
    source: str
    title: str
    heading: str
    text: str
    score: float
    # The passage's windows embedded at ingest (rows x dimension), when the table has them.
    window_vectors: np.ndarray | None = field(default=None, compare=False, repr=False)
    facts: PageFacts = NO_FACTS  # what its page says of its published address

    def snippet(self, limit: int = 300) -> str:
        return snippet_of(self.text, limit)


@dataclass
class IngestReport:
    files: int = 0
    chunks_added: int = 0
    chunks_unchanged: int = 0
    chunks_removed: int = 0
    embedded: int = 0
    skipped: list[SkippedFile] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    # (file, lines dropped, kinds) for files that held secret-looking lines; never the secret
    redacted: list[tuple[Path | str, int, str]] = field(default_factory=list)
    # Stored sources this run did not find and kept (no prune): what --prune would remove.
    not_found: list[str] = field(default_factory=list)
    seconds: float = 0.0
    indexes: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)  # seconds per phase

    @property
    def skipped_count(self) -> int:
        return len(self.skipped)


@dataclass(frozen=True)
class KnowledgeStats:
    uri: str
    files: int
    chunks: int
    embedder: str | None
    dimension: int
    fts_index: bool
    vector_index: str | None
    unindexed_rows: int
    size_bytes: int | None
    version: int | None


ProgressFn = Callable[[str, int, int], None]  # (phase, done, total)


class KnowledgeBase:
    """One LanceDB table of chunks at ``uri`` (a folder or an object-store URI)."""

    def __init__(
        self,
        uri: str,
        embedder: Embedder | None,
        *,
        ann_threshold: int = DEFAULT_ANN_THRESHOLD,
        max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
        nprobes: int = 40,
        refine_factor: int | None = None,
        ann_index: str = DEFAULT_ANN_INDEX,
        embed_batch: int = EMBED_BATCH,
        write_batch: int = WRITE_BATCH,
    ) -> None:
        defer_reexports(UNUSED_REEXPORTS)
        defer_annotation_imports(ANNOTATION_ONLY_IMPORTS)
        with marker_only_overrides():
            import lancedb

        self.uri = uri
        self.embedder = embedder
        self.ann_threshold = ann_threshold
        self.max_file_bytes = max_file_bytes
        self.nprobes = nprobes
        if ann_index not in ANN_INDEXES:
            raise ValueError(f"ann_index must be one of {', '.join(ANN_INDEXES)}")
        self.ann_index = ann_index
        # Exact re-ranking of refine_factor x limit candidates repairs quantisation error:
        # 8-bit SQ needs little (recall 0.987 at 1M with 2..5), PQ codes need more.
        self.refine_factor = refine_factor or (10 if ann_index == "IVF_PQ" else 3)
        self.embed_batch = embed_batch
        self.write_batch = write_batch
        # Searches go through LanceDB's async API (see _reader); both connections share one
        # session, so the index and metadata caches are held once.
        self._session = lancedb.Session()
        try:
            self._db = lancedb.connect(
                uri, read_consistency_interval=_REFRESH, session=self._session
            )
        except Exception as exc:
            raise KnowledgeError(f"cannot open knowledge base at {uri}: {exc}") from exc
        self._table_handle: Any = None
        self._reader_handle: Any = None
        self._facts: _TableFacts | None = None
        self._facts_checked = 0.0
        self._passages: _Passages | None = None
        self._vocabulary: Vocabulary | None = None
        self._vocabulary_version: int | None = None
        self._vocabulary_checked = 0.0
        self._warned_chunker = False
        self._query_cache = Lru(QUERY_CACHE_SIZE)
        self.embeds_windows = embedder is not None and embedder.name.startswith(
            WINDOW_EMBEDDER_PREFIX
        )

    @classmethod
    def open(cls, uri: str, embedder: Embedder | None, **options: Any) -> KnowledgeBase:
        """Connect (never fails for a missing local KB: it searches as empty)."""
        return cls(uri, embedder, **options)

    # ------------------------------------------------------------ table access

    def _table(self) -> Any:
        if self._table_handle is None:
            try:
                names = self._db.list_tables().tables
            except Exception as exc:
                raise KnowledgeError(f"cannot read knowledge base at {self.uri}: {exc}") from exc
            if TABLE_NAME in names:
                self._table_handle = self._db.open_table(TABLE_NAME)
        return self._table_handle

    def _reader(self) -> Any:
        """The table as LanceDB's async API sees it, for searching (call once ``_table()`` has
        found it). Every call of the sync API is a round trip to LanceDB's event-loop thread,
        and its query builders add more (schema reads, a file-system check per full-text
        query); one search is one coroutine there instead (about 3x less CPU)."""
        if self._reader_handle is None:
            self._reader_handle = _lance_loop().run(self._open_reader())
        return self._reader_handle

    async def _open_reader(self) -> Any:
        import lancedb

        db = await lancedb.connect_async(
            self.uri, read_consistency_interval=_REFRESH, session=self._session
        )
        return await db.open_table(TABLE_NAME)

    def _changed(self) -> None:
        """After this process wrote the table: the next search reads the new version."""
        self._reader_handle = None
        self._facts_checked = 0.0
        self._vocabulary_checked = 0.0

    def _table_facts(self, table: Any) -> _TableFacts:
        """What a search needs to know of the table, re-read at most every
        TABLE_REFRESH_SECONDS (the same delay after which LanceDB itself looks for a version
        written by another process) and after this process's own writes."""
        now = time.monotonic()
        if self._facts is None or now - self._facts_checked >= TABLE_REFRESH_SECONDS:
            schema = table.schema
            self._facts = _TableFacts(
                embedder=_embedder_of(schema),
                chunker=_chunker_of(schema),
                columns=frozenset(schema.names),
                vector_index=self._vector_index_type(table),
                version=int(table.version),
            )
            self._facts_checked = now
        return self._facts

    def _recorded_embedder(self, table: Any) -> tuple[str, int]:
        return _embedder_of(table.schema)

    def _mismatch(self, recorded: tuple[str, int]) -> EmbedderMismatchError:
        using = f"{self.embedder.name} ({self.embedder.dimension})" if self.embedder else "none"
        built = f"{recorded[0]} ({recorded[1]})" if recorded[0] != NO_EMBEDDER else "none"
        return EmbedderMismatchError(
            f"the knowledge base at {self.uri} was built with embedder {built} but {using} is "
            "configured; re-ingest with `supportbot ingest --recreate PATH...` or set "
            "SUPPORTBOT_EMBEDDER to match"
        )

    def _check_embedder(self, recorded: tuple[str, int], *, for_ingest: bool) -> None:
        if self.embedder is None:
            # Searching without an embedder is BM25 over any table; adding rows without
            # vectors to a table that has them is not possible.
            if for_ingest and recorded[0] != NO_EMBEDDER:
                raise self._mismatch(recorded)
            return
        if recorded != (self.embedder.name, self.embedder.dimension):
            raise self._mismatch(recorded)

    def _recorded_chunker(self, table: Any) -> str:
        return _chunker_of(table.schema)

    def _warn_if_old_chunking(self, chunker: str) -> None:
        if not self._warned_chunker and chunker != CHUNKER_VERSION:
            self._warned_chunker = True
            log.warning(
                "the knowledge base at %s was chunked by an older version of supportbot; "
                "run `supportbot ingest PATH...` again to rebuild it (search quality is lower "
                "until then)",
                self.uri,
            )

    def _schema(self, *, windows: bool) -> pa.Schema:
        fields = [
            pa.field("chunk_id", pa.string()),
            pa.field("source", pa.string()),
            pa.field("title", pa.string()),
            pa.field("heading", pa.string()),
            pa.field("text", pa.string()),
            pa.field("search_text", pa.string()),
            pa.field("content_hash", pa.string()),
        ]
        name, dimension = NO_EMBEDDER, 0
        if self.embedder is not None:
            name, dimension = self.embedder.name, int(self.embedder.dimension)
            fields.append(pa.field("vector", pa.list_(pa.float32(), dimension)))
        if windows:  # float32 rows, packed: read whole for a hit, never searched
            fields.append(pa.field(WINDOWS_COLUMN, pa.binary()))
        fields.append(pa.field(LINKS_COLUMN, pa.string()))
        metadata = {
            META_EMBEDDER: name.encode(),
            META_DIMENSION: str(dimension).encode(),
            META_CHUNKER: CHUNKER_VERSION.encode(),
        }
        return pa.schema(fields, metadata=metadata)

    # ------------------------------------------------------------ search

    def search(self, query: str, **options: Any) -> list[SearchHit]:
        """:meth:`_search`, with a store that fails underneath (its files removed or damaged
        while the process runs) reported as one :class:`KnowledgeError` line naming it."""
        try:
            return self._search(query, **options)
        except KnowledgeError:
            raise
        except (ValueError, RuntimeError, OSError, pa.ArrowException) as exc:
            if isinstance(exc, ValueError) and "not found" not in str(exc):
                raise  # a bad argument, not a damaged store

            # Lance's messages end with the Rust source location: not for operators.
            detail = _RUST_LOCATION.sub("", (str(exc).splitlines() or [""])[0])[:200]
            raise KnowledgeError(
                f"the knowledge base at {self.uri} cannot be read ({type(exc).__name__}: "
                f"{detail}); rebuild it with `supportbot ingest DOCS`"
            ) from exc

    def _search(
        self,
        query: str,
        *,
        k: int = 5,
        mode: str = "hybrid",
        exact: bool = False,
        per_source: int = 1,
        decompose: bool = True,
        source_prefix: str | None = None,
    ) -> list[SearchHit]:
        """The best ``k`` sources, best first, with up to ``per_source`` passages each (the
        best passage first); [] for an empty KB or an empty question.

        ``exact`` bypasses the ANN index (a flat scan): the baseline for measuring recall.
        ``decompose`` also searches each part of a two-part question (storage.queries) and
        fuses the rankings, so that both pages such a question needs come up.
        ``source_prefix`` keeps only sources under that path ("billing/"), filtered before
        ranking so the k hits are the best of those sources.
        """
        if mode not in SEARCH_MODES:
            raise ValueError(f"mode must be one of {', '.join(SEARCH_MODES)}")
        query = " ".join(query.split())
        table = self._table()
        if not query or table is None or k <= 0:
            return []
        facts = self._table_facts(table)
        self._check_embedder(facts.embedder, for_ingest=False)
        self._warn_if_old_chunking(facts.chunker)
        if mode == "hybrid" and self.embedder is None:
            mode = "fts"
        if mode == "vector" and self.embedder is None:
            raise KnowledgeError("vector search needs an embedder; SUPPORTBOT_EMBEDDER is none")
        # Several chunks of one file compete for the same slots, so ask for more than k (but
        # not much more: with the ANN index every extra row costs refine_factor exact reads).
        depth = max(CANDIDATES_MIN, k * max(1, per_source) * CANDIDATES_PER_HIT)
        queries = [query, *(sub_queries(query) if decompose else [])]
        columns = (
            RESULT_COLUMNS
            + ([LINKS_COLUMN] if LINKS_COLUMN in facts.columns else [])
            + ([WINDOWS_COLUMN] if self.embedder and WINDOWS_COLUMN in facts.columns else [])
        )
        passages = self._current_passages(facts, columns)
        plan = _Plan(
            depth=depth,
            where=_prefix_filter(source_prefix),
            # Each candidate comes with its passage: from memory for a small table, else read
            # with the candidates (far less than a second query for the winners' text).
            columns=columns,
            passages=passages,
        )
        reader = passages.reader if passages is not None else self._reader()
        loop = _lance_loop()
        fts = None
        if mode != "vector":
            texts = [self._typo_corrected(table, q) for q in queries]
            fts = asyncio.run_coroutine_threadsafe(_gather(_fts, reader, texts, plan), loop.loop)
        vector: list[list[_Candidate]] = []
        if mode != "fts":
            # Embedded here, while the BM25 searches run on LanceDB's threads.
            vectors = self.query_vectors(queries)
            if exact:
                plan = replace(plan, exact=True)
            elif facts.vector_index:
                plan = replace(plan, nprobes=self.nprobes, refine_factor=self.refine_factor)
            vector = loop.run(_gather(_vector, reader, list(vectors), plan))
        bm25 = fts.result() if fts is not None else []
        if bm25 and vector:
            rankings = [fuse([b, v]) for b, v in zip(bm25, vector, strict=True)]
        else:
            rankings = bm25 or vector
        ranked = interleave_sources(rankings) if len(rankings) > 1 else rankings[0]
        return [self._hit(c) for c in _top_per_source(ranked, k, per_source)]

    def query_vectors(self, queries: list[str]) -> np.ndarray:
        """The queries embedded (rows in order), through a small cache: one question is
        embedded by the hybrid search, then read again by the answer-or-refuse checks."""
        cached = [self._query_cache.get(q) for q in queries]
        missing = [q for q, v in zip(queries, cached, strict=True) if v is None]
        if missing:
            fresh = np.asarray(self.embedder.embed(missing), dtype=np.float32)  # type: ignore[union-attr]
            found = dict(zip(missing, fresh, strict=True))
            cached = [
                v if v is not None else self._query_cache.put(q, found[q])
                for q, v in zip(queries, cached, strict=True)
            ]
        return np.vstack(cached)

    def _current_passages(self, facts: _TableFacts, columns: list[str]) -> _Passages | None:
        """The passages of the table's current version, read once per version; None for a
        table over PASSAGES_MAX_ROWS or PASSAGES_MAX_BYTES (remembered for that version)."""
        held = self._passages
        if held is not None and held.version == facts.version and held.columns == columns:
            return held if held.rows is not None else None
        held = _lance_loop().run(_read_passages(self.uri, self._session, facts.version, columns))
        self._passages = held
        return held if held.rows is not None else None

    def _hit(self, candidate: _Candidate) -> SearchHit:
        return SearchHit(
            candidate.chunk_id,
            candidate.source,
            candidate.title,
            candidate.heading,
            candidate.text,
            candidate.score,
            self._window_vectors(candidate.windows),
            PageFacts.decode(candidate.links),
        )

    def document_frequencies(self) -> tuple[Mapping[str, int], int] | None:
        """(number of passages each indexed word appears in, number of passages), or None for
        an empty or very large knowledge base. For weighing a question's words by rarity."""
        table = self._table()
        vocabulary = self._current_vocabulary(table) if table is not None else None
        if vocabulary is None:
            return None
        return vocabulary.frequencies, vocabulary.documents  # read-only; shared, not copied

    def _typo_corrected(self, table: Any, query: str) -> str:
        """The query with corrections of words the index has never seen appended (the unknown
        word itself scores nothing in BM25, so keeping it costs nothing)."""
        vocabulary = self._current_vocabulary(table)
        if vocabulary is None:
            return query
        corrections = vocabulary.corrections(query)
        return " ".join([query, *corrections.values()]) if corrections else query

    def _current_vocabulary(self, table: Any) -> Vocabulary | None:
        """The words of the table (for typo correction), rebuilt when the table changes; None
        for a table too large to hold them. Either answer is kept for the table's version, so
        a large table costs no extra round trips per search either."""
        now = time.monotonic()
        known = self._vocabulary_version is not None
        if known and now - self._vocabulary_checked < VOCABULARY_REFRESH_SECONDS:
            return self._vocabulary
        self._vocabulary_checked = now
        version = int(table.version)
        if known and version == self._vocabulary_version:
            return self._vocabulary
        if table.count_rows() > VOCABULARY_MAX_ROWS:
            self._vocabulary = None
        else:
            texts = table.search().select(["search_text"]).limit(None).to_arrow()
            self._vocabulary = Vocabulary.from_texts(texts.column("search_text").to_pylist())
        self._vocabulary_version = version
        return self._vocabulary

    def _window_vectors(self, packed: bytes | None) -> np.ndarray | None:
        if not packed or self.embedder is None:
            return None
        return np.frombuffer(packed, dtype=np.float32).reshape(-1, int(self.embedder.dimension))

    # ------------------------------------------------------------ ingest

    def ingest(
        self,
        paths: Sequence[Path | FetchedPages],
        *,
        prune: bool = False,
        progress: bool = False,
        recreate: bool = False,
    ) -> IngestReport:
        """Read, chunk, embed only new or changed chunks, then drop stale ones.

        ``prune`` also drops chunks whose file was not found in this run (the given paths are
        taken as the whole corpus). ``recreate`` rebuilds the table (e.g. for a new embedder).
        Pages fetched from a site (:class:`FetchedPages`) are read like files, named by URL.
        """
        started = time.perf_counter()
        report = IngestReport()
        roots = [p if isinstance(p, FetchedPages) else Path(p) for p in paths]
        if not roots:
            raise IngestInputError("no path given; name a docs folder or file to ingest")
        for root in roots:
            if isinstance(root, FetchedPages):
                report.warnings.extend(root.warnings)
            elif not root.exists():
                raise IngestInputError(f"{root} does not exist")
        with ingest_lock(self.uri), _Progress(progress) as bar:
            chunks, found, read = self._read_all(roots, report, bar.update)
            if not chunks:
                raise IngestInputError(self._nothing_to_ingest(roots, report))
            self._store(
                chunks,
                found,
                read,
                None,
                report,
                bar.update,
                prune=prune,
                recreate=recreate,
                rebuild_old_chunking=True,
                note_not_found=True,
            )
        report.seconds = time.perf_counter() - started
        return report

    def ingest_chunks(
        self, chunks: Sequence[Chunk], *, vectors: Any = None, progress: bool = False
    ) -> IngestReport:
        """Store passages chunked elsewhere, optionally with their vectors already computed.

        Same rules as :meth:`ingest`: unchanged chunks are skipped, stale chunks of the same
        sources removed after the new ones are written, indexes kept current.
        """
        started = time.perf_counter()
        report = IngestReport(files=len({c.source for c in chunks}))
        matrix = None
        if vectors is not None:
            if self.embedder is None:
                raise KnowledgeError("vectors were given but no embedder is configured")
            matrix = np.asarray(vectors, dtype=np.float32)
            if matrix.shape != (len(chunks), int(self.embedder.dimension)):
                raise KnowledgeError(
                    f"vectors have shape {matrix.shape}, expected "
                    f"({len(chunks)}, {self.embedder.dimension})"
                )
        with ingest_lock(self.uri), _Progress(progress) as bar:
            sources = {c.source for c in chunks}
            found = Found(frozenset(sources))
            self._store(list(chunks), found, sources, matrix, report, bar.update, prune=False)
        report.seconds = time.perf_counter() - started
        return report

    def _store(
        self,
        chunks: list[Chunk],
        found: Found,
        sources_read: set[str],
        vectors: np.ndarray | None,
        report: IngestReport,
        update: ProgressFn,
        *,
        prune: bool,
        recreate: bool = False,
        rebuild_old_chunking: bool = False,
        note_not_found: bool = False,
    ) -> None:
        table = None if recreate else self._table()
        if table is not None:
            self._check_embedder(self._recorded_embedder(table), for_ingest=True)
            if rebuild_old_chunking and not self._is_current(table):
                recreate = self._rebuild_old_chunking(table, found, report, prune=prune)
                table = None if recreate else table
        previous = self._table() if recreate else None
        replaced = previous.count_rows() if previous is not None else None
        existing = self._existing_ids(table)
        positions: dict[str, int] = {}
        for position, chunk in enumerate(chunks):
            if chunk.chunk_id not in existing:
                positions.setdefault(chunk.chunk_id, position)
        fresh = [chunks[p] for p in positions.values()]
        fresh_vectors = vectors[list(positions.values())] if vectors is not None else None
        report.chunks_unchanged = len({c.chunk_id for c in chunks} & existing.keys())
        clock = time.perf_counter()
        table = self._write(table, fresh, fresh_vectors, report, update, overwrite=recreate)
        report.timings["write"] = time.perf_counter() - clock
        clock = time.perf_counter()
        report.chunks_removed = self._delete_stale(
            table, existing, chunks, found, sources_read, prune=prune
        )
        if replaced is not None:
            report.chunks_removed = replaced
        elif note_not_found and not prune:
            gone = {source for source in existing.values() if not found.may_exist(source)}
            report.not_found = sorted(gone)
        report.timings["delete"] = time.perf_counter() - clock
        self._maintain_indexes(table, report, changed=bool(fresh or report.chunks_removed))
        self._changed()
        self._warned_chunker = False

    def _is_current(self, table: Any) -> bool:
        """Chunked by this version, with passage windows when this embedder gets them."""
        if self._recorded_chunker(table) != CHUNKER_VERSION:
            return False
        return not self.embeds_windows or WINDOWS_COLUMN in table.schema.names

    def _rebuild_old_chunking(
        self, table: Any, found: Found, report: IngestReport, *, prune: bool
    ) -> bool:
        """Chunk ids of two chunkings never match, so a table chunked by an older version is
        rebuilt rather than mixed, when that loses nothing: every file it holds is in this run
        (or ``--prune`` says the paths are the whole corpus). Otherwise the new passages are
        added as usual and the operator is told how to finish."""
        stored = set(self._existing_ids(table).values())
        # A rebuild keeps only what this run read: not when a site was only partly fetched.
        if (prune and not found.unsure_prefixes) or stored <= found.sources:
            message = f"{self.uri} was chunked by an older version of supportbot; rebuilt"
            rebuild = True
        else:
            message = (
                f"{self.uri} was chunked by an older version of supportbot and holds files not "
                f"given now ({len(stored - found.sources)}); run `supportbot ingest --prune` "
                "with all your docs folders to rebuild it"
            )
            rebuild = False
        log.info(message)
        report.warnings.append(message)
        return rebuild

    def _read_all(
        self, roots: list[Path | FetchedPages], report: IngestReport, update: ProgressFn
    ) -> tuple[list[Chunk], Found, set[str]]:
        """Chunks of every readable file, the sources found, and the sources read."""
        found, unsupported = discover(roots)
        report.skipped.extend(unsupported)
        for item in unsupported:
            log.info("skipped %s: %s", item.path, item.reason)
        chunks: list[Chunk] = []
        read: set[str] = set()
        for done, item in enumerate(found, start=1):
            update("Reading", done, len(found))
            try:
                doc = read_document(item.path, max_bytes=self.max_file_bytes)
            except UnreadableFile as exc:
                report.skipped.append(SkippedFile(item.where, str(exc)))
                log.info("skipped %s: %s", item.where, exc)
                continue
            for warning in doc.warnings:
                report.warnings.append(f"{item.where}: {warning}")
                log.info("%s: %s", item.where, warning)
            redaction = redact_document(doc)
            if redaction:
                report.redacted.append((item.where, redaction.lines, redaction.describe()))
                log.info(
                    "%s: %d secret-looking line(s) not indexed (%s)",
                    item.where,
                    redaction.lines,
                    redaction.describe(),
                )
            report.files += 1
            read.add(item.source)
            chunks.extend(chunk_document(doc, source=item.source))
        return chunks, Found.of(found, roots), read

    def _nothing_to_ingest(self, roots: list[Path | FetchedPages], report: IngestReport) -> str:
        where = ", ".join(str(r) for r in roots)
        if report.skipped:
            return (
                f"no readable documents in {where} ({len(report.skipped)} file(s) skipped: "
                f"{report.skipped[0].name}: {report.skipped[0].reason}); "
                "the knowledge base was not changed"
            )
        if report.files:
            return f"no text found in {where}; the knowledge base was not changed"
        return f"no documents found in {where}; the knowledge base was not changed"

    def _existing_ids(self, table: Any) -> dict[str, str]:
        if table is None:
            return {}
        data = table.search().select(["chunk_id", "source"]).limit(None).to_arrow()
        return dict(
            zip(data.column("chunk_id").to_pylist(), data.column("source").to_pylist(), strict=True)
        )

    def _write(
        self,
        table: Any,
        fresh: list[Chunk],
        precomputed: np.ndarray | None,
        report: IngestReport,
        update: ProgressFn,
        *,
        overwrite: bool,
    ) -> Any:
        # Rows added to a table must match its schema: one built without windows gets none
        # (answers embed those passages' windows on first use) until it is rebuilt.
        windows = self.embeds_windows and (
            overwrite or table is None or WINDOWS_COLUMN in table.schema.names
        )
        if not overwrite and table is not None and LINKS_COLUMN not in table.schema.names:
            table.add_columns(pa.field(LINKS_COLUMN, pa.string()))  # null for the rows it has
        schema = self._schema(windows=windows)
        pending: list[pa.Table] = []
        pending_rows = 0
        batches: list[pa.Table] = []  # only kept when overwriting: one commit at the end

        def flush() -> None:
            nonlocal table, pending, pending_rows
            if not pending:
                return
            data = pa.concat_tables(pending)
            pending, pending_rows = [], 0
            if overwrite:
                batches.append(data)
            elif table is None:
                table = self._db.create_table(TABLE_NAME, data=data, schema=schema)
            else:
                table.add(data)
            report.chunks_added += data.num_rows

        for start in range(0, len(fresh), self.embed_batch):
            batch = fresh[start : start + self.embed_batch]
            vectors = None
            if precomputed is not None:
                vectors = precomputed[start : start + len(batch)]
            elif self.embedder is not None:
                vectors = self._embed(batch, report)
            packed = self._embed_windows(batch, report) if windows else None
            pending.append(_arrow_rows(batch, vectors, schema, packed))
            pending_rows += len(batch)
            update("Embedding", start + len(batch), len(fresh))
            if pending_rows >= self.write_batch:
                flush()
        flush()
        if overwrite:
            data = pa.concat_tables(batches) if batches else schema.empty_table()
            table = self._db.create_table(TABLE_NAME, data=data, schema=schema, mode="overwrite")
        self._table_handle = table
        self._changed()
        return table

    def _embed(self, batch: list[Chunk], report: IngestReport) -> np.ndarray:
        vectors = self._embed_texts([c.embedding_text for c in batch], report)
        report.embedded += len(batch)
        return vectors

    def _embed_windows(self, batch: list[Chunk], report: IngestReport) -> list[bytes]:
        """Each chunk's windows embedded, packed as float32 rows (one blob per chunk)."""
        per_chunk = [windows_of(c) for c in batch]
        vectors = self._embed_texts([w for windows in per_chunk for w in windows], report)
        packed, start = [], 0
        for windows in per_chunk:
            packed.append(vectors[start : start + len(windows)].tobytes())
            start += len(windows)
        return packed

    def _embed_texts(self, texts: list[str], report: IngestReport) -> np.ndarray:
        try:
            vectors = self.embedder.embed(texts)  # type: ignore[union-attr]
        except Exception as exc:
            log.exception("embedding failed after %d chunk(s)", report.embedded)
            raise KnowledgeError(
                f"embedding failed after {report.embedded} chunk(s) ({type(exc).__name__}: "
                f"{exc}); the knowledge base still serves its previous content, run the ingest "
                "again to finish"
            ) from exc
        return np.asarray(vectors, dtype=np.float32)

    def _delete_stale(
        self,
        table: Any,
        existing: dict[str, str],
        chunks: list[Chunk],
        found: Found,
        sources_read: set[str],
        *,
        prune: bool,
    ) -> int:
        """Old chunks of files read in this run; with prune, of files no longer found.

        A file that exists but could not be read keeps its previous chunks.
        """
        if table is None or not existing:
            return 0
        current = {c.chunk_id for c in chunks}
        stale = [
            chunk_id
            for chunk_id, source in existing.items()
            if chunk_id not in current
            and (source in sources_read or (prune and not found.may_exist(source)))
        ]
        if not stale:
            return 0
        # One delete = one commit: readers see either all old chunks or none of them.
        table.delete(_in_list("chunk_id", stale))
        return len(stale)

    def _maintain_indexes(self, table: Any, report: IngestReport, *, changed: bool) -> None:
        from lancedb.index import FTS, BTree

        if table is None:
            return
        names = {idx.columns[0]: idx for idx in table.list_indices()}
        clock = time.perf_counter()
        if "search_text" not in names:
            table.create_index(
                "search_text",
                config=FTS(stem=True, remove_stop_words=True, ascii_folding=True),
                replace=True,
            )
            report.indexes.append("fts created")
        if "chunk_id" not in names:  # stale chunks are deleted by id
            table.create_index("chunk_id", config=BTree(), replace=True)
        elif changed:
            # Folds new rows into the existing indexes and compacts small fragments.
            table.optimize()
            report.indexes.append("indexes updated")
        report.timings["fts_index"] = time.perf_counter() - clock
        clock = time.perf_counter()
        rows = table.count_rows()
        if self.embedder is not None and "vector" not in names and rows >= self.ann_threshold:
            table.create_index("vector", config=self._ann_config(rows))
            report.indexes.append(f"ann created ({self.ann_index})")
        report.timings["ann_index"] = time.perf_counter() - clock

    def _ann_config(self, rows: int) -> Any:
        from lancedb.index import IvfPq, IvfSq

        # sqrt(rows) partitions; 10 k-means iterations on 64 samples per partition build 4x
        # faster than LanceDB's defaults (50, 256) at the same recall: recall is bounded by
        # the partitions probed, and refine_factor re-ranks the candidates exactly.
        common: dict[str, Any] = {
            "distance_type": "cosine",
            "num_partitions": max(1, int(rows**0.5)),
            "max_iterations": 10,
            "sample_rate": 64,
        }
        if self.ann_index == "IVF_PQ":
            dimension = int(self.embedder.dimension)  # type: ignore[union-attr]
            return IvfPq(num_sub_vectors=_sub_vectors(dimension), **common)
        return IvfSq(**common)

    # ------------------------------------------------------------ status

    def _vector_index_type(self, table: Any) -> str | None:
        for idx in table.list_indices():
            if idx.columns == ["vector"]:
                return str(idx.index_type)
        return None

    def sources(self) -> list[str]:
        """Every source (document path) in the knowledge base, sorted."""
        table = self._table()
        if table is None:
            return []
        column = table.search().select(["source"]).limit(None).to_arrow().column("source")
        return sorted(set(column.to_pylist()))

    def stats(self) -> KnowledgeStats:
        table = self._table()
        if table is None:
            embedder = self.embedder.name if self.embedder else None
            return KnowledgeStats(self.uri, 0, 0, embedder, 0, False, None, 0, None, None)
        name, dimension = self._recorded_embedder(table)
        sources = table.search().select(["source"]).limit(None).to_arrow().column("source")
        indexes = list(table.list_indices())
        unindexed = 0
        for idx in indexes:
            unindexed = max(unindexed, int(getattr(idx, "num_unindexed_rows", 0) or 0))
        return KnowledgeStats(
            uri=self.uri,
            files=len(set(sources.to_pylist())),
            chunks=table.count_rows(),
            embedder=None if name == NO_EMBEDDER else name,
            dimension=dimension,
            fts_index=any(idx.columns == ["search_text"] for idx in indexes),
            vector_index=self._vector_index_type(table),
            unindexed_rows=unindexed,
            size_bytes=_size_on_disk(self.uri) or table.stats().get("total_bytes"),
            version=int(table.version),
        )

    def passage_count(self) -> int:
        """How many passages the knowledge base holds (0 when nothing was ever ingested)."""
        table = self._table()
        return 0 if table is None else int(table.count_rows())

    def ping(self) -> bool:
        """True when the store answers (an empty knowledge base is reachable)."""
        try:
            self._db.list_tables()
            table = self._table()
            if table is not None:
                table.count_rows()
            return True
        except Exception:
            log.warning("knowledge base at %s is not reachable", self.uri, exc_info=True)
            return False


# ---------------------------------------------------------------- helpers


@dataclass(frozen=True)
class _Candidate:
    chunk_id: str
    source: str
    score: float
    title: str = ""
    heading: str = ""
    text: str = ""
    windows: bytes | None = field(default=None, repr=False)
    links: str | None = None


@dataclass(frozen=True)
class _TableFacts:
    embedder: tuple[str, int]
    chunker: str
    columns: frozenset[str]
    vector_index: str | None
    version: int


@dataclass(frozen=True, eq=False)
class _Passages:
    """The passages of one version of the table, by LanceDB row id, with the table opened at
    that version: row ids are only stable within a version (a compaction moves rows), so the
    queries that return them run against the same version."""

    version: int
    columns: list[str]
    reader: Any = None
    # row id -> (chunk_id, source, title, heading, text, window vectors, links); None: too
    # large
    rows: dict[int, tuple[Any, ...]] | None = None


async def _read_passages(uri: str, session: Any, version: int, columns: list[str]) -> _Passages:
    import lancedb

    db = await lancedb.connect_async(uri, session=session)
    reader = await db.open_table(TABLE_NAME, version=version)
    if await reader.count_rows() > PASSAGES_MAX_ROWS:
        return _Passages(version, columns)
    data = await reader.query().select(columns).with_row_id().to_arrow()
    if data.nbytes > PASSAGES_MAX_BYTES:
        return _Passages(version, columns)
    values = [data.column(name).to_pylist() for name in RESULT_COLUMNS]
    values.extend(_optional_columns(data))
    rows = dict(zip(data.column("_rowid").to_pylist(), zip(*values, strict=True), strict=True))
    return _Passages(version, columns, reader, rows)


@dataclass(frozen=True)
class _Plan:
    """How each query of one search runs in LanceDB."""

    depth: int
    where: str | None
    columns: list[str]
    passages: _Passages | None = None  # when set, queries return row ids, not columns
    exact: bool = False
    nprobes: int | None = None  # set when the vector column has an ANN index
    refine_factor: int | None = None


_REFRESH = timedelta(seconds=TABLE_REFRESH_SECONDS)


def _lance_loop() -> Any:
    """LanceDB's own event-loop thread, where its sync API runs every call."""
    from lancedb.background_loop import LOOP

    return LOOP


def _embedder_of(schema: pa.Schema) -> tuple[str, int]:
    meta = schema.metadata or {}
    name = meta.get(META_EMBEDDER, NO_EMBEDDER.encode()).decode()
    return name, int(meta.get(META_DIMENSION, b"0"))


def _chunker_of(schema: pa.Schema) -> str:
    return (schema.metadata or {}).get(META_CHUNKER, b"1").decode()


async def _gather(
    run: Callable[[Any, Any, _Plan], Awaitable[list[_Candidate]]],
    reader: Any,
    queries: list[Any],
    plan: _Plan,
) -> list[list[_Candidate]]:
    """One ranking per query, the queries run at once."""
    return list(await asyncio.gather(*(run(reader, q, plan) for q in queries)))


async def _fts(reader: Any, text: str, plan: _Plan) -> list[_Candidate]:
    query = reader.query().nearest_to_text(text, columns="search_text")
    if plan.where:
        query = query.where(plan.where)  # a prefilter: the best rows *of those sources*
    if plan.passages is not None:
        data = await query.select(["_score"]).with_row_id().limit(plan.depth).to_arrow()
        return _held_candidates(plan.passages, data, data.column("_score").to_pylist())
    data = await query.select([*plan.columns, "_score"]).limit(plan.depth).to_arrow()
    return _candidates(data, data.column("_score").to_pylist())


async def _vector(reader: Any, vector: np.ndarray, plan: _Plan) -> list[_Candidate]:
    query = reader.query().nearest_to(vector).column("vector").distance_type("cosine")
    if plan.where:
        query = query.where(plan.where)
    if plan.exact:
        query = query.bypass_vector_index()
    elif plan.nprobes is not None and plan.refine_factor is not None:
        query = query.nprobes(plan.nprobes).refine_factor(plan.refine_factor)
    if plan.passages is not None:
        data = await query.select(["_distance"]).with_row_id().limit(plan.depth).to_arrow()
        scores = [1.0 - d for d in data.column("_distance").to_pylist()]
        return _held_candidates(plan.passages, data, scores)
    data = await query.select([*plan.columns, "_distance"]).limit(plan.depth).to_arrow()
    return _candidates(data, [1.0 - d for d in data.column("_distance").to_pylist()])


def _candidates(data: pa.Table, scores: list[float]) -> list[_Candidate]:
    """Rows of a result table, column by column (a dict per row costs more)."""
    columns = [data.column(name).to_pylist() for name in RESULT_COLUMNS]
    windows, links = _optional_columns(data)
    return [
        _Candidate(chunk_id, source, float(score), title, heading, text, packed, facts)
        for chunk_id, source, title, heading, text, score, packed, facts in zip(
            *columns, scores, windows, links, strict=True
        )
    ]


def _optional_columns(data: pa.Table) -> tuple[list[Any], list[Any]]:
    """The window vectors and links of result rows, None for a table without them."""
    return tuple(  # type: ignore[return-value]
        data.column(name).to_pylist() if name in data.column_names else [None] * data.num_rows
        for name in (WINDOWS_COLUMN, LINKS_COLUMN)
    )


def _held_candidates(passages: _Passages, data: pa.Table, scores: list[float]) -> list[_Candidate]:
    """Rows of a result table of row ids, their passages from memory."""
    rows = passages.rows
    assert rows is not None
    return [
        _Candidate(chunk_id, source, float(score), title, heading, text, packed, links)
        for (chunk_id, source, title, heading, text, packed, links), score in zip(
            (rows[row_id] for row_id in data.column("_rowid").to_pylist()), scores, strict=True
        )
    ]


def fuse(
    rankings: list[list[_Candidate]], weights: Sequence[float] | None = None
) -> list[_Candidate]:
    """Reciprocal rank fusion, by default with equal weights: score = sum of w/(RRF_K + rank).

    Equal weights because neither ranking is known to be better on documents we have not
    seen (on the external dev sets neither wins every kind of question). Chunks with equal
    fused scores (swapped ranks) are ordered by their scores *within* each ranking, each
    scaled to [0, 1] by that ranking's best: the evidence decides, not the list order.
    """
    fused: dict[str, float] = {}
    evidence: dict[str, float] = {}
    hits: dict[str, _Candidate] = {}
    for ranking, weight in zip(rankings, weights or [1.0] * len(rankings), strict=True):
        best = max((c.score for c in ranking), default=0.0) or 1.0
        for rank, hit in enumerate(ranking, start=1):
            fused[hit.chunk_id] = fused.get(hit.chunk_id, 0.0) + weight / (RRF_K + rank)
            evidence[hit.chunk_id] = evidence.get(hit.chunk_id, 0.0) + max(0.0, hit.score) / best
            hits.setdefault(hit.chunk_id, hit)
    order = sorted(fused, key=lambda c: (round(fused[c], 12), evidence[c]), reverse=True)
    return [replace(hits[c], score=fused[c]) for c in order]


def interleave_sources(rankings: list[list[_Candidate]]) -> list[_Candidate]:
    """Round-robin over the rankings' sources, the whole question's ranking first in each round:
    its best source keeps rank 1 and each part's best source follows. Scores are not mixed
    (a part's scores are not comparable with the whole question's), ranks are.
    """
    by_source: dict[str, list[_Candidate]] = {}
    orders: list[list[str]] = []
    for ranking in rankings:
        order: list[str] = []
        for hit in ranking:
            if hit.source not in order:
                order.append(hit.source)
            group = by_source.setdefault(hit.source, [])
            if all(c.chunk_id != hit.chunk_id for c in group):
                group.append(hit)
        orders.append(order)
    merged: list[str] = []
    for position in range(max(len(order) for order in orders)):
        for order in orders:
            if position < len(order) and order[position] not in merged:
                merged.append(order[position])
    return [hit for source in merged for hit in by_source[source]]


def _top_per_source(ranked: list[_Candidate], k: int, per_source: int) -> list[_Candidate]:
    """The first ``k`` sources in ranked order, each with its best ``per_source`` chunks, grouped
    by source (a source's passages together, best source first)."""
    groups: dict[str, list[_Candidate]] = {}
    for hit in ranked:
        group = groups.get(hit.source)
        if group is None:
            if len(groups) == k:
                continue
            groups[hit.source] = [hit]
        elif len(group) < per_source:
            group.append(hit)
    return [hit for group in groups.values() for hit in group]


def _arrow_rows(
    chunks: list[Chunk],
    vectors: np.ndarray | None,
    schema: pa.Schema,
    windows: list[bytes] | None = None,
) -> pa.Table:
    columns: dict[str, Any] = {
        "chunk_id": [c.chunk_id for c in chunks],
        "source": [c.source for c in chunks],
        "title": [c.title for c in chunks],
        "heading": [c.heading for c in chunks],
        "text": [c.text for c in chunks],
        "search_text": [c.search_text for c in chunks],
        "content_hash": [c.content_hash for c in chunks],
    }
    if vectors is not None:
        dimension = schema.field("vector").type.list_size
        if vectors.shape != (len(chunks), dimension):
            raise KnowledgeError(
                f"the embedder returned vectors of shape {vectors.shape}, expected "
                f"({len(chunks)}, {dimension})"
            )
        flat = pa.array(vectors.reshape(-1), type=pa.float32())
        columns["vector"] = pa.FixedSizeListArray.from_arrays(flat, dimension)
    if windows is not None:
        columns[WINDOWS_COLUMN] = windows
    columns[LINKS_COLUMN] = [c.links for c in chunks]
    return pa.table(columns, schema=schema)


def _prefix_filter(prefix: str | None) -> str | None:
    """A SQL filter keeping sources that start with ``prefix`` (LIKE wildcards escaped)."""
    if not prefix:
        return None
    escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return "source LIKE '" + escaped.replace("'", "''") + "%' ESCAPE '\\'"


def _in_list(column: str, values: Sequence[str]) -> str:
    quoted = ", ".join("'" + value.replace("'", "''") + "'" for value in values)
    return f"{column} IN ({quoted})"


def _sub_vectors(dimension: int) -> int:
    # 8 dimensions per PQ code keeps recall high once refine_factor re-ranks the candidates.
    for size in (8, 16, 4, 2, 1):
        if dimension % size == 0:
            return max(1, dimension // size)
    return 1


def _size_on_disk(uri: str) -> int | None:
    if "://" in uri and not uri.startswith("file://"):
        return None
    root = Path(uri.removeprefix("file://"))
    if not root.exists():
        return None
    total = 0
    for folder, _dirs, files in os.walk(root):
        for name in files:
            with contextlib.suppress(OSError):  # a file removed while we walk
                total += os.path.getsize(os.path.join(folder, name))
    return total


class _Progress:
    """A rich progress bar on a terminal; nothing otherwise."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled and sys.stderr.isatty()
        self._bar: Any = None
        self._tasks: dict[str, Any] = {}

    def __enter__(self) -> _Progress:
        if self.enabled:
            from rich.console import Console
            from rich.progress import Progress

            self._bar = Progress(console=Console(stderr=True), transient=True)
            self._bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()

    def update(self, phase: str, done: int, total: int) -> None:
        if self._bar is None:
            return
        if phase not in self._tasks:
            self._tasks[phase] = self._bar.add_task(phase, total=total)
        self._bar.update(self._tasks[phase], completed=done, total=total)
