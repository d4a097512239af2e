"""The semantic answer check: passage windows embedded at ingest, read back with each hit, and
the learned rule that uses their similarity to the question (bot.semantic, bot.grounding)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bot.agent import OfflineAgent, final_result
from bot.answerability import Answerability
from bot.grounding import ANSWER_PROBABILITY, SEMANTIC_ANSWER_PROBABILITY
from bot.messages import ReplyKind
from bot.semantic import PassageMatcher
from storage.embeddings import LocalEmbedder, local_embedder_available
from storage.knowledge import KnowledgeBase, SearchHit
from storage.passages import window_texts, windows_of

pytestmark = pytest.mark.skipif(not local_embedder_available(), reason="no 'local' extra")

DOCS = {
    "jobs.md": """# Background jobs

## Queueing work

Long-running work such as sending reports or resizing images should not run inside a web
request. Put it on the queue with `jobs.enqueue(task, *args)`: the request returns at once and
a worker process runs the task later. Workers are started with `acme worker --concurrency 4`.

## Retries

A task that raises is retried three times, one minute apart. After the last attempt it is moved
to the dead-letter queue, which `acme jobs dead` lists.
""",
    "deploy.md": """# Deploying

## Containers

The official image is `acme/server`. Mount the configuration file at `/etc/acme.toml` and
expose port 8080. Health checks call `/healthz`, which answers 200 once the database is
reachable.
""",
}


@pytest.fixture(scope="module")
def embedder() -> LocalEmbedder:
    return LocalEmbedder()


class CountingEmbedder(LocalEmbedder):
    """The real model, counting what it is asked to embed."""

    texts = 0

    def embed(self, texts: list[str]) -> np.ndarray:
        self.texts += len(texts)
        return super().embed(texts)


def write_docs(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in DOCS.items():
        (folder / name).write_text(text)
    return folder


def test_ingest_embeds_each_passage_windows_once(tmp_path: Path, embedder: LocalEmbedder) -> None:
    kb = KnowledgeBase.open(str(tmp_path / "kb"), embedder)
    kb.ingest([write_docs(tmp_path / "docs")])
    hits = kb.search("how do I run slow work outside the request?", k=3)
    assert hits and all(h.window_vectors is not None for h in hits)
    for hit in hits:
        expected = embedder.embed(windows_of(hit))
        assert hit.window_vectors.shape == expected.shape
        assert np.min(np.sum(hit.window_vectors * expected, axis=1)) > 1 - 1e-4


def test_a_table_built_without_windows_still_works_and_is_rebuilt(
    tmp_path: Path, embedder: LocalEmbedder
) -> None:
    docs = write_docs(tmp_path / "docs")
    old = KnowledgeBase.open(str(tmp_path / "kb"), embedder)
    old.embeds_windows = False  # as a version before windows wrote it
    old.ingest([docs])
    question = "how do I run slow work outside the request?"

    kb = KnowledgeBase.open(str(tmp_path / "kb"), embedder)
    before = kb.search(question, k=3)
    assert before and all(h.window_vectors is None for h in before)
    counting = CountingEmbedder()
    matcher = PassageMatcher(counting)
    computed = matcher.similarity(question, before)  # embedded on first use, then cached
    assert counting.texts > 1
    counting.texts = 0
    assert abs(matcher.similarity(question, before) - computed) < 1e-5
    assert counting.texts == 1  # only the question

    report = kb.ingest([docs])
    assert any("rebuilt" in w for w in report.warnings)
    after = kb.search(question, k=3)
    assert all(h.window_vectors is not None for h in after)
    assert abs(PassageMatcher(embedder).similarity(question, after) - computed) < 1e-4


async def test_the_semantic_rule_decides_when_the_local_embedder_is_there(
    tmp_path: Path, embedder: LocalEmbedder
) -> None:
    kb = KnowledgeBase.open(str(tmp_path / "kb"), embedder)
    kb.ingest([write_docs(tmp_path / "docs")])
    agent = OfflineAgent(kb)

    answered = await final_result(agent, "Which port does the container expose?")
    decision = answered.tool_metadata["decision"]
    assert answered.kind is ReplyKind.ANSWER
    assert decision["signals"]["semantic"] > 0.5
    assert decision["probability"] >= SEMANTIC_ANSWER_PROBABILITY
    assert answered.sources[0].url_or_path == "deploy.md"
    # The quote is the passage's window closest to the question in meaning.
    [chosen] = decision["chosen"]
    [hit] = [h for h in kb.search("container port", k=5) if h.chunk_id == chosen]
    assert window_texts(hit.text)[decision["windows"][chosen]] in answered.text

    # On topic (jobs, workers), but the docs never say: refused.
    refused = await final_result(agent, "Can a worker run tasks written in Ruby?")
    assert refused.kind is ReplyKind.NO_ANSWER

    # Without the signal the lexical model decides (and records no similarity).
    question = "Which port does the container expose?"
    lexical = await final_result(
        OfflineAgent(kb, answerability=Answerability(kb, semantic=False)), question
    )
    assert lexical.tool_metadata["decision"]["signals"]["semantic"] is None
    assert ANSWER_PROBABILITY != SEMANTIC_ANSWER_PROBABILITY  # two fitted models, two bars


async def test_a_bm25_knowledge_base_never_embeds(tmp_path: Path) -> None:
    kb = KnowledgeBase.open(str(tmp_path / "kb"), None)
    kb.ingest([write_docs(tmp_path / "docs")])
    assert PassageMatcher.for_knowledge(kb) is None
    result = await final_result(OfflineAgent(kb), "How many times is a failing task retried?")
    assert result.tool_metadata["decision"]["signals"]["semantic"] is None


def test_the_quoted_window_holds_the_question_words_not_only_its_topic() -> None:
    """Meaning alone prefers a window about the same topic; the quote is the window that is
    close in meaning *and* holds the question's words (as in `make demo`'s webhook answer)."""
    from bot.answerability import quote_window
    from bot.grounding import content_words
    from bot.semantic import Match

    passage = SearchHit(
        chunk_id="c1",
        source="webhooks.md",
        title="Webhooks",
        heading="Delivery and retries",
        text=(
            "Any 2xx status counts as delivered. Failed deliveries are retried up to 8 times "
            "with exponential backoff. Each delivery carries a signature header. Deliveries of "
            "one webhook may arrive out of order."
        ),
        score=1.0,
    )
    windows = window_texts(passage.text)
    assert len(windows) == 3 and "out of order" in windows[2] and "retried" not in windows[2]
    topical = Match(similarity=0.62, window=2, heading=0.5, scores=(0.5, 0.52, 0.62))
    words = content_words("How many times are webhook deliveries retried?")
    assert "retried" in windows[quote_window(words, passage, topical)]
    # Without the question's words in any window, meaning decides.
    assert quote_window(content_words("unrelated zebra"), passage, topical) == 2


STANDOUT_DOCS = {
    "billing.md": "# Billing\n\nInvoices are emailed on the first day of each month. A card "
    "that fails is retried three times before the account is paused.\n",
    "sso.md": "# Single sign-on\n\nConnect Okta under Settings > Security > SSO. Users who "
    "sign in through SSO cannot set a password.\n",
    "exports.md": "# Exports\n\nExport every project as a ZIP of CSV files from Settings > "
    "Data. Exports larger than 2 GB are split into parts.\n",
    "webhooks.md": "# Webhooks\n\nEach delivery is signed with HMAC-SHA256 in the "
    "X-Signature header. Failed deliveries are retried for 24 hours.\n",
    "teams.md": "# Teams\n\nInvite people from the Members page. Owners can transfer "
    "ownership to another admin at any time.\n",
}


async def test_standout_is_high_when_one_page_says_it_and_low_when_none_does(
    tmp_path: Path,
) -> None:
    """A paraphrase the docs answer has one page far closer than the rest; a question on a
    subject near several pages that none covers has no such page. The signal is recorded in the
    decision, and computing it embeds nothing beyond what retrieval already embedded."""
    docs = tmp_path / "docs"
    docs.mkdir()
    for name, text in STANDOUT_DOCS.items():
        (docs / name).write_text(text, encoding="utf-8")
    embedder = CountingEmbedder()
    kb = KnowledgeBase.open(str(tmp_path / "kb"), embedder)
    kb.ingest([docs])
    agent = OfflineAgent(kb, answerability=Answerability(kb, standout=True))
    answered = await final_result(agent, "what happens when a customer's credit card is declined?")
    uncovered = await final_result(agent, "Can I pay with a bank transfer in another currency?")

    high = answered.tool_metadata["decision"]["signals"]["standout"]
    low = uncovered.tool_metadata["decision"]["signals"]["standout"]
    assert high > low + 0.05, (high, low)

    # Retrieval, the window check and the standout search all read one cached question vector
    # (and the cached headings): asking again embeds nothing.
    question = "How do I rotate the webhook signing secret?"
    await final_result(agent, question)
    embedder.texts = 0
    await final_result(agent, question)
    assert embedder.texts == 0

    matcher = PassageMatcher(embedder)
    assert matcher.standout("anything", []) == 0.0  # fewer than two pages: nothing to compare


def test_query_vectors_are_cached_per_text(tmp_path: Path) -> None:
    embedder = CountingEmbedder()
    kb = KnowledgeBase.open(str(tmp_path / "kb"), embedder)
    first = kb.query_vectors(["alpha", "beta"])
    again = kb.query_vectors(["beta", "gamma", "alpha"])
    assert embedder.texts == 3  # alpha, beta, then only gamma
    assert np.allclose(again[0], first[1]) and np.allclose(again[2], first[0])


async def test_a_failed_standout_search_leaves_the_decision_to_the_other_signals(
    tmp_path: Path, embedder: LocalEmbedder, caplog: pytest.LogCaptureFixture
) -> None:
    """The standout search is one signal more: when it fails the decision is still made (it
    leans to refusing) and the operator sees why in the log."""
    kb = KnowledgeBase.open(str(tmp_path / "kb"), embedder)
    kb.ingest([write_docs(tmp_path / "docs")])
    answerability = Answerability(kb, standout=True)
    question = "Which port does the container expose?"
    hits = kb.search(question, k=4)
    kb.embedder = None  # from here on a vector search raises KnowledgeError
    decision = await answerability.decide(question, hits)
    assert decision.signals is not None and decision.signals.standout is None
    assert decision.signals.semantic is not None  # the windows were still compared
    assert "standout search failed (KnowledgeError)" in caplog.text


async def test_standout_is_searched_once_per_question_and_table_version(
    tmp_path: Path, embedder: LocalEmbedder
) -> None:
    """Deciding the same question again (a follow-up, the unknown-name retry, the auto-answer
    gate) reuses its standout instead of searching again; an ingest that changes the table
    makes it search again."""
    docs = write_docs(tmp_path / "docs")
    kb = KnowledgeBase.open(str(tmp_path / "kb"), embedder)
    kb.ingest([docs])
    searches: list[str] = []
    search = kb.search

    def counted(query: str, **options: object) -> list[SearchHit]:
        searches.append(str(options.get("mode")))
        return search(query, **options)  # type: ignore[arg-type]

    kb.search = counted  # type: ignore[method-assign]
    answerability = Answerability(kb, standout=True)
    question = "Which port does the container expose?"
    hits = search(question, k=4)
    first = await answerability.decide(question, hits)
    again = await answerability.decide(question, hits)
    assert searches == ["vector"]
    assert first.signals is not None and again.signals is not None
    assert again.signals.standout == first.signals.standout is not None

    (docs / "extra.md").write_text("# Ports\n\nThe admin API listens on port 9090.\n")
    kb.ingest([docs])
    await answerability.decide(question, hits)
    assert searches == ["vector", "vector"]


async def test_no_standout_search_for_a_model_that_does_not_weigh_it(
    tmp_path: Path, embedder: LocalEmbedder
) -> None:
    """The standout signal costs a second search: a model that gives it no weight does not pay
    for it (the signal is then absent from the record, not zero)."""
    from bot.grounding import semantic_model_uses

    kb = KnowledgeBase.open(str(tmp_path / "kb"), embedder)
    kb.ingest([write_docs(tmp_path / "docs")])
    searches: list[object] = []
    search = kb.search

    def counted(query: str, **options: object) -> list[SearchHit]:
        searches.append(options.get("mode"))
        return search(query, **options)  # type: ignore[arg-type]

    kb.search = counted  # type: ignore[method-assign]
    question = "Which port does the container expose?"
    hits = search(question, k=4)
    decision = await Answerability(kb, standout=False).decide(question, hits)
    assert searches == [] and decision.signals is not None
    assert decision.signals.semantic is not None and decision.signals.standout is None
    await Answerability(kb).decide(question, hits)  # the default follows the model's weights
    assert searches == (["vector"] if semantic_model_uses("standout") else [])
