"""Unit tests for the built-in ``extractive`` consolidation policy (no daemon)."""

from __future__ import annotations

import datetime as dt
import pickle
from concurrent.futures import ProcessPoolExecutor

import pytest

from memosd.plugins.api import Consolidation, ConsolidationPolicy, PageView, TurnView
from memosd.tiers.extractive import SENTENCE_CHARS, SUMMARY_CHARS, ExtractivePolicy, consolidate_page

# 1:56 pm on Monday 8 May 2023 (UTC), a LoCoMo-style session date.
SESSION = dt.datetime(2023, 5, 8, 13, 56, tzinfo=dt.timezone.utc).timestamp()
# Thursday 25 May 2023, 1:14 pm.
THURSDAY = dt.datetime(2023, 5, 25, 13, 14, tzinfo=dt.timezone.utc).timestamp()

CONVERSATION = [
    "Caroline: Hey Mel! Good to see you! How have you been?",
    "Melanie: Hey Caroline! I'm swamped with the kids and work. What's up with you?",
    "Caroline: I went to the LGBTQ support group yesterday and it was so powerful.",
    "Melanie: Wow, that's cool, Caroline! Did you hear any inspiring stories at the support group?",
    "Caroline: The transgender stories were so inspiring! The support group made me feel accepted.",
    "Melanie: I painted a lake sunrise last year and my daughter turned 5 in March.",
    "Caroline: I'm researching adoption agencies, because adoption has been my dream since 2019.",
    "Melanie: We visited Paris and climbed near Mount Everest with the kids. Thanks!",
]


def page_of(texts, ids=None, when=SESSION, page_id=7) -> PageView:
    """A page of ``texts`` with turn ids ``ids`` (default 100, 101, ...) all at session time ``when``."""
    ids = ids if ids is not None else [100 + i for i in range(len(texts))]
    turns = tuple(TurnView(i, t, "session_1", "chat", when, 1_700_000_000.0) for i, t in zip(ids, texts))
    return PageView("ns", page_id, turns)


def day(epoch: float) -> dt.date:
    return dt.datetime.fromtimestamp(epoch, dt.timezone.utc).date()


def fact_with(result: Consolidation, needle: str):
    matches = [f for f in result.facts if needle in f.text]
    assert matches, f"no fact mentions {needle!r}: {[f.text for f in result.facts]}"
    return matches[0]


def test_is_a_consolidation_policy_named_extractive():
    policy = ExtractivePolicy()
    assert isinstance(policy, ConsolidationPolicy)
    assert (policy.name, policy.version) == ("extractive", "1")
    assert isinstance(policy.consolidate(page_of(CONVERSATION)), Consolidation)


def test_output_is_deterministic():
    page = page_of(CONVERSATION)
    first = ExtractivePolicy().consolidate(page)
    second = ExtractivePolicy().consolidate(page_of(list(CONVERSATION)))
    assert first == second
    assert first.facts and first.entities and first.keywords  # determinism of something non-trivial


def test_summary_is_central_page_text_with_speaker_and_short():
    page = page_of(CONVERSATION)
    summary = consolidate_page(page).summary
    assert 0 < len(summary) <= SUMMARY_CHARS
    # The most central sentence (support group is talked about in 3 turns), speaker kept.
    assert summary.startswith("Caroline: ")
    assert "support group" in summary
    # Extractive: every word of the summary comes from the page.
    page_words = {w.strip(".,!?:'").casefold() for t in CONVERSATION for w in t.split()}
    assert {w.strip(".,!?:'…").casefold() for w in summary.split()} <= page_words | {""}


def test_summary_of_long_sentences_is_cut_to_the_limit():
    long_turns = [f"Speaker{i}: " + " ".join(["galaxy telescope observation"] * 60) + "." for i in range(4)]
    summary = consolidate_page(page_of(long_turns)).summary
    assert 0 < len(summary) <= SUMMARY_CHARS
    assert summary.endswith("…")


def test_sources_are_page_turn_ids():
    ids = [41, 7, 999, 3, 12, 5000, 8, 77]
    result = consolidate_page(page_of(CONVERSATION, ids=ids))
    assert result.facts and result.entities
    for item in (*result.facts, *result.entities):
        assert item.sources and set(item.sources) <= set(ids)
    assert all(len(f.sources) == 1 for f in result.facts)


def test_yesterday_resolves_to_the_day_before_the_session():
    result = consolidate_page(page_of(CONVERSATION))
    fact = fact_with(result, "support group yesterday")
    # Speaker kept, trailing punctuation dropped.
    assert fact.text == "Caroline: I went to the LGBTQ support group yesterday and it was so powerful"
    assert fact.sources == (102,)
    assert fact.meta["relative"] == "yesterday"
    assert fact.meta["date"] == "2023-05-07"
    assert fact.event_time == dt.datetime(2023, 5, 7, tzinfo=dt.timezone.utc).timestamp()


def test_last_year_resolves_to_the_previous_year():
    fact = fact_with(consolidate_page(page_of(CONVERSATION)), "lake sunrise")
    assert fact.meta["relative"] == "last year"
    assert fact.meta["date"].startswith("2022")
    assert day(fact.event_time).year == 2022


@pytest.mark.parametrize(
    ("sentence", "session", "expected"),
    [
        ("I ran a charity race for mental health last Saturday.", THURSDAY, "2023-05-20"),
        ("We are going camping with the kids next month.", THURSDAY, "2023-06-01"),
        ("My brother moved to Denver two days ago for work.", THURSDAY, "2023-05-23"),
        ("Last week I adopted a puppy from the shelter.", THURSDAY, "2023-05-15"),
        ("I finished my first pottery class this weekend.", THURSDAY, "2023-05-27"),
        ("I started a new job as a counselor on 8 May 2023.", THURSDAY, "2023-05-08"),
        ("I moved into my apartment in 2021 after graduating.", THURSDAY, "2021-01-01"),
        ("My sister got married on March 3rd, 2020 in Ohio.", THURSDAY, "2020-03-03"),
    ],
)
def test_date_phrases_resolve_against_the_session_date(sentence, session, expected):
    result = consolidate_page(page_of([f"Melanie: {sentence}"], when=session))
    assert len(result.facts) == 1
    fact = result.facts[0]
    assert fact.meta["date"] == expected
    assert day(fact.event_time).isoformat() == expected


def test_undated_fact_takes_the_turn_time_and_unresolvable_relative_date_stays_unresolved():
    result = consolidate_page(page_of(["John: I bought a red bicycle for my nephew Tommy."], when=THURSDAY))
    assert result.facts[0].event_time == THURSDAY and "date" not in result.facts[0].meta
    no_session = consolidate_page(page_of(["John: I bought a red bicycle yesterday for my nephew."], when=None))
    fact = no_session.facts[0]
    assert fact.event_time is None
    assert fact.meta == {"relative": "yesterday"}


def test_speakers_and_proper_nouns_are_entities_with_their_turns():
    result = consolidate_page(page_of(CONVERSATION))
    entities = {e.name: e.sources for e in result.entities}
    # Caroline speaks in even turns and is named in turns 101 and 103.
    assert entities["Caroline"] == (100, 101, 102, 103, 104, 106)
    assert entities["Melanie"] == (101, 103, 105, 107)
    assert entities["LGBTQ"] == (102,)
    assert entities["Paris"] == (107,)
    assert entities["Mount Everest"] == (107,)
    # Capitalised sentence starts, greetings and months are not entities.
    assert not {"The", "Hey", "Wow", "I'm", "March", "Thanks"} & set(entities)
    names = [e.name for e in result.entities]
    assert names == sorted(names, key=str.casefold)


def test_multiword_names_with_links_and_initials_are_one_entity():
    result = consolidate_page(page_of([
        "Tim: I'm rereading The Lord of the Rings and a novel by George R. R. Martin this week.",
        "John: My cousin moved to New York City, she says hi.",
    ]))
    names = {e.name for e in result.entities}
    assert {"Lord of the Rings", "George R. R. Martin", "New York City"} <= names
    assert not {"The", "Lord", "Rings", "R", "George", "Martin", "New"} & names
    # An unknown capitalised sentence start is dropped, without leaving a dangling "of the".
    opening = consolidate_page(page_of(["Tim: Lord of the Rings is my favourite film series ever."]))
    assert [e.name for e in opening.entities] == ["Rings", "Tim"]


def test_names_used_only_to_address_someone_do_not_make_a_fact():
    result = consolidate_page(page_of([
        "Caroline: That charity race sounds exciting, Mel!",  # vocative: no fact
        "Caroline: Yesterday Mel ran a charity race.",  # says something about Mel: a fact
    ]))
    assert [f.sources for f in result.facts] == [(101,)]
    assert {e.name: e.sources for e in result.entities}["Mel"] == (100, 101)


def test_image_captions_feed_entities_but_not_facts_or_summary():
    page = page_of(["Gina: Look what I found! [shared image: a photo of the Eiffel Tower in Paris at night]",
                    "Jon: That is a beautiful photo of the tower at night."])
    result = consolidate_page(page)
    assert {e.name: e.sources for e in result.entities}["Eiffel Tower"] == (100,)
    assert all("photo of the Eiffel" not in f.text for f in result.facts)
    assert "shared image" not in result.summary and "shared" not in result.keywords


def test_keywords_are_salient_page_terms():
    result = consolidate_page(page_of(CONVERSATION))
    keywords = result.keywords
    assert 0 < len(keywords) <= 8 and len(set(keywords)) == len(keywords)
    assert keywords[0] == "support"  # said in three turns
    assert "adoption" in keywords
    lowered = {k.casefold() for k in keywords}
    assert not lowered & {"caroline", "melanie", "the", "and", "hey", "wow"}


def test_greetings_and_small_talk_produce_no_facts():
    page = page_of(["Caroline: Hey Mel!", "Melanie: Hi Caroline! Thanks!", "Caroline: Good to see you!",
                    "Melanie: Wow, that's so cool! I totally agree with you!", "Caroline: How have you been lately?",
                    "Melanie: I'm so happy for you, Caroline!", "Caroline: Thanks so much, Mel, we really did it!"])
    result = consolidate_page(page)
    assert result.facts == ()
    assert result.usage == {"turns": 7, "facts": 0}


def test_short_first_person_remarks_are_not_facts_but_dated_or_numbered_ones_are():
    # Under 4 content words is trivial, unless a date, number or name carries it (then 3 suffice).
    result = consolidate_page(page_of(["Melanie: I love that painting!", "Melanie: I really love painting sunsets!",
                                       "Caroline: My daughter turned 5."]))
    assert [f.text for f in result.facts] == ["Caroline: My daughter turned 5"]


def test_facts_are_capped_per_turn_and_per_page():
    # Three equally good dated sentences per turn: only two may be kept from each.
    turn = "Nate: I played 3 chess games yesterday. I lost 2 poker games yesterday. I sold 4 old books yesterday."
    result = consolidate_page(page_of([turn] * 20))
    assert len(result.facts) == 24
    per_turn: dict[int, int] = {}
    for fact in result.facts:
        per_turn[fact.sources[0]] = per_turn.get(fact.sources[0], 0) + 1
    assert max(per_turn.values()) == 2
    assert result.usage == {"turns": 20, "facts": 24}
    # In page order.
    assert [f.sources[0] for f in result.facts] == sorted(f.sources[0] for f in result.facts)


def test_empty_page_and_empty_turns():
    empty = consolidate_page(PageView("ns", 1, ()))
    assert empty == Consolidation(summary="", usage={"turns": 0, "facts": 0})
    blank = consolidate_page(page_of(["", "   ", "\n"]))
    assert blank.summary == "" and blank.facts == () and blank.entities == ()
    assert blank.usage == {"turns": 3, "facts": 0}


def test_odd_input_is_handled_without_the_error_fallback():
    texts = [
        "no speaker prefix here, I adopted two cats named Miso and Tofu last month",
        "Zoë: Je suis allée à Montréal hier 🎉 and I met my friend Søren at the Café Olimpico.",
        "Anna: " + "I walked along the river and counted the boats " * 2500,  # ~120k chars, one sentence
        "Note: buy milk for the kids tomorrow morning at the store.",
        "Bob: [shared image: a photo of a cat]",
        "::: ... ??? !!!",
    ]
    result = consolidate_page(page_of(texts))
    assert "errors" not in result.usage
    assert len(result.summary) <= SUMMARY_CHARS
    assert all(len(f.text) <= SENTENCE_CHARS + len("Anna: ") for f in result.facts)
    entities = {e.name: e.sources for e in result.entities}
    assert entities["Zoë"] == (101,) and entities["Søren"] == (101,) and entities["Bob"] == (104,)
    assert "Note" not in entities  # a label, not a speaker
    cats = fact_with(result, "two cats")
    assert cats.text.startswith("no speaker prefix here") and cats.meta["relative"] == "last month"


def test_policy_pickles_and_runs_in_a_worker_process():
    page = page_of(CONVERSATION)
    policy = pickle.loads(pickle.dumps(ExtractivePolicy()))
    expected = consolidate_page(page)
    assert policy.consolidate(page) == expected
    assert pickle.loads(pickle.dumps(expected)) == expected
    with ProcessPoolExecutor(max_workers=1) as pool:
        assert pool.submit(consolidate_page, page).result(timeout=60) == expected
        assert pool.submit(policy.consolidate, page).result(timeout=60) == expected


def test_a_batch_crosses_to_the_policy_process_as_messagepack_and_comes_back_equal():
    from memosd.tiers.policy import _ENCODER, _RESULTS, _consolidate_packed

    pages = [page_of(CONVERSATION), page_of(["Ana: we moved to Lisbon on 3 May 2023.", "Ben: nice!"], ids=[40, 41],
                                            page_id=8), page_of([], ids=[], page_id=9)]
    expected = [consolidate_page(page) for page in pages]
    assert any(result.facts for result in expected) and any(f.meta for r in expected for f in r.facts)
    with ProcessPoolExecutor(max_workers=1) as pool:
        packed = pool.submit(_consolidate_packed, _ENCODER.encode(pages)).result(timeout=60)
    assert _RESULTS.decode(packed) == expected  # tuples stay tuples, facts keep their dates and sources
