"""The signals the learned answer-or-refuse rule combines (bot/grounding.py), on hand-made
passages: each must move the way its definition says."""

from __future__ import annotations

import math

from bot.grounding import (
    LOGISTIC_BIAS,
    LOGISTIC_WEIGHTS,
    Signals,
    answer_probability,
    content_words,
    decide,
    evidence,
    idf_weight,
    ordered_words,
    paired_coverage,
    rarest_words,
    signals_of,
    windowed_coverage,
)
from storage.knowledge import SearchHit


def hit(text: str, heading: str = "", source: str = "page.md") -> SearchHit:
    return SearchHit(f"{source}#{heading}", source, "Guide", heading, text, 1.0)


# Word rarities of a small imaginary knowledge base of 100 pages: "cluster" on most pages,
# "snapshot" on a few, "restore" on a handful.
WEIGHT = idf_weight({"cluster": 90, "snapshot": 8, "restore": 5, "member": 60}, 100)


def test_windowed_coverage_wants_the_words_close_together() -> None:
    words = content_words("restore a snapshot")
    together = hit("Intro text here. You can restore a snapshot with etcdutl. More text.")
    scattered = hit(
        "Take a snapshot first. Unrelated sentence one. Unrelated sentence two. "
        "Later you may restore things."
    )
    assert windowed_coverage(words, together, WEIGHT) == 1.0
    assert windowed_coverage(words, scattered, WEIGHT) < 1.0
    # The heading counts in every window.
    titled = hit("Use etcdutl for it. Unrelated. Then restore it.", heading="Snapshot")
    assert windowed_coverage(words, titled, WEIGHT) == 1.0
    assert windowed_coverage(set(), together, WEIGHT) == 0.0


def test_rarest_words_are_the_least_frequent_in_the_knowledge_base() -> None:
    words = content_words("restore a cluster member from a snapshot")
    assert rarest_words(words, WEIGHT) == ["restor", "snapshot"]
    # A word on no page at all ("kafka") is rarer than any word the pages have.
    assert rarest_words(content_words("cluster kafka snapshot"), WEIGHT)[0] == "kafka"


def test_signals_see_a_missing_rare_word() -> None:
    hits = [hit("A cluster member can restore data. Cluster members vote.")]
    answered = content_words("restore a cluster member")
    asked = content_words("restore a cluster member from kafka")
    good = signals_of(answered, evidence(answered, hits, WEIGHT), hits, WEIGHT)
    bad = signals_of(asked, evidence(asked, hits, WEIGHT), hits, WEIGHT)
    assert good.coverage == 1.0 and good.rarest == 1.0 and good.spread == 1.0
    assert bad.rarest == 0.5 and bad.coverage < good.coverage and bad.spread < 1.0
    assert 0.0 < bad.words <= 1.0 and set(good.as_dict()) >= {"window", "plain"}


def test_answer_probability_is_the_logistic_of_the_weighted_signals() -> None:
    signals = Signals(1.0, 1.0, 1.0, 1.0, 1.0, 0.3, 1.0)
    z = LOGISTIC_BIAS + sum(w * x for w, x in zip(LOGISTIC_WEIGHTS, signals.vector(), strict=True))
    assert math.isclose(answer_probability(signals), 1 / (1 + math.exp(-z)))
    empty = Signals(0.0, 0.0, 0.0, 0.0, 0.0, 0.3, 0.0)
    assert answer_probability(signals) > answer_probability(empty)  # fitted weights are sane


def test_decide_with_the_learned_rule_records_its_probability() -> None:
    hits = [hit("You can restore a snapshot into a new cluster with etcdutl snapshot restore.")]
    yes = decide("How do I restore a snapshot?", hits, weight=WEIGHT, min_probability=0.5)
    assert yes.answerable and yes.probability is not None and yes.probability >= 0.5
    assert yes.as_metadata()["signals"]["rarest"] == 1.0
    no = decide("How do I stream snapshots to Kafka?", hits, weight=WEIGHT, min_probability=0.5)
    assert not no.answerable
    # Without min_probability the older coverage rule decides and no probability is recorded.
    assert decide("How do I restore a snapshot?", hits, weight=WEIGHT).probability is None


def test_paired_coverage_wants_neighbouring_question_words_in_one_sentence() -> None:
    assert ordered_words("Does etcd support secondary indexes on values?") == [
        "etcd",
        "support",
        "secondary",
        "index",
        "valu",
    ]
    hits = [hit("Every key has an index. Secondary storage is slow. Values are bytes.")]
    assert paired_coverage("secondary indexes", hits) == 0.0  # both words, never together
    assert paired_coverage("key index", hits) == 1.0
    assert paired_coverage("index", hits) == 1.0  # no pair to check
    assert paired_coverage("key index values", hits) == 0.5
