"""The lead sentence answers the question, and the quotes stay within their budget.

Example articles written for these tests (a harbour board, a ferry strike): the composer must
lead with the sentence that holds what the question asks for (a name, a number, a date), not
with a sentence that restates the question, echoes the headline, or is a byline.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.answer import ExtractiveComposer, split_sentences
from bot.embed import Embedder
from bot.lead import LEAD_WEIGHTS, is_story_link, lead_features, lead_scores
from bot.models import Chunk, Passage

HARBOUR = (
    "Harbour board approves the breakwater. "
    "By Staff Reporter, with reporting by the city desk. "
    "The harbour board on Tuesday approved the breakwater after two years of debate. "
    "The board's chair, Maria Okafor, said the 400-metre wall would cost 38 million euros. "
    "Work will start in April 2025 and take three years, according to the plans. "
    "Residents of the old town had asked the board to protect the quay from winter storms."
)
FERRY = (
    "Ferry crews walk out over pay. "
    "Ferry crews went on strike on Monday over pay, the union said. "
    "About 1,200 sailors stopped work, leaving 14 routes without a service. "
    "The union's leader, Tomas Lindqvist, called the offer of the operator Nordline an insult. "
    "Talks are due to resume in Gothenburg on Friday."
)
LIBRARY = (
    "Library reopens after flood repairs. "
    "The central library reopened on Saturday, eight months after the river flooded its basement. "
    "Repairs cost the city 2.4 million euros, most of it paid by insurers. "
    "The head librarian, Ana Petrescu, said 30,000 damaged books had been replaced. "
    "The reading room now opens until 9 p.m. on weekdays. "
    "Readers queued outside for an hour before the doors opened."
)


def passage(aid: str, text: str, title: str, dense: float = 0.6) -> Passage:
    chunk = Chunk(f"{aid}:0", aid, 0, 0, len(text), text)
    return Passage(chunk, title, "Gazette", dt.date(2024, 5, 2), "", score=0.03, dense=dense)


def lead(embedder: Embedder, question: str, *passages: Passage) -> str:
    composer = ExtractiveComposer(embedder, max_sentences=5, min_relevance=0.3)
    answer = composer.compose(question, embedder.encode([question])[0], list(passages))
    assert not answer.abstained
    return answer.citations[0].quote


ARTICLES = {
    "harbour": (HARBOUR, "Harbour board approves the breakwater"),
    "ferry": (FERRY, "Ferry crews walk out over pay"),
    "library": (LIBRARY, "Library reopens after flood repairs"),
}


@pytest.mark.parametrize(
    ("question", "article", "must_lead"),
    [
        # The closest sentence restates the question; the lead must be the one with the figure.
        ("How much will the breakwater cost?", "harbour", "38 million"),
        ("When will work on the breakwater start?", "harbour", "April 2025"),
        ("Where will the ferry talks resume?", "ferry", "Gothenburg"),
        ("Which operator runs the ferries?", "ferry", "Nordline"),
        ("Who is the head librarian?", "library", "Ana Petrescu"),
        ("How many books were replaced at the library?", "library", "30,000"),
        ("Why was the library closed?", "library", "flooded"),
    ],
)
def test_the_lead_sentence_holds_what_the_question_asks_for(
    embedder: Embedder, question: str, article: str, must_lead: str
) -> None:
    """The best-ranked article comes first, the other two after it (as the reranker hands
    them over); the first quote must hold the answer."""
    ranked = sorted(ARTICLES, key=lambda name: name != article)
    passages = [passage(name, *ARTICLES[name]) for name in ranked]
    quote = lead(embedder, question, *passages)
    assert must_lead in quote, quote


def test_quotes_stay_within_their_character_budget(embedder: Embedder) -> None:
    """However many sentences may be quoted, an answer quotes at most 1,000 characters, and
    still quotes more than the lead when there is room."""
    long = (
        "The breakwater will be built from 40,000 tonnes of granite blocks shipped by barge "
        "from a quarry in Norway, the harbour board's engineers said in their report. "
        "Divers will first lay a bed of gravel on the seabed along the line of the wall, "
        "working only in the calm summer months between June and September each year. "
        "Cranes mounted on two floating pontoons will then lower the largest blocks, each "
        "weighing up to twelve tonnes, onto the gravel bed in overlapping rows. "
        "Concrete armour units shaped like four-legged stars will protect the seaward face "
        "against the heavy waves that the winter storms push into the bay. "
        "A walkway for anglers and walkers will run along the crest of the finished wall, "
        "with railings, benches and lights paid for by the city's tourism office. "
        "The contractor must keep the harbour mouth open for the fishing fleet and the "
        "ferries throughout the works, which limits how much can be built at once. "
        "Environmental monitors will count seals and seabirds every week, and can halt the "
        "building work if the colonies on the northern rocks are disturbed."
    )
    composer = ExtractiveComposer(embedder, max_sentences=10, min_relevance=0.3)
    question = "How will the harbour breakwater be built?"
    answer = composer.compose(
        question,
        embedder.encode([question])[0],
        [passage("report", long, "Breakwater report"), passage("harbour", *ARTICLES["harbour"])],
    )
    quoted = [c.quote for c in answer.citations]
    assert len(quoted) >= 2
    assert len(" ".join(quoted)) <= 1000 < len(long)


def test_a_byline_or_the_headline_never_leads(embedder: Embedder) -> None:
    quote = lead(
        embedder,
        "Who said the harbour board breakwater would cost 38 million euros?",
        passage("harbour", HARBOUR, "Harbour board approves the breakwater"),
    )
    assert "By Staff Reporter" not in quote and not quote.startswith("Harbour board approves")


def test_features_single_out_the_answering_sentence() -> None:
    """Each cheap signal says what its name says, on a question and two sentences."""
    p = passage("harbour", HARBOUR, "Harbour board approves the breakwater")
    sentences = split_sentences(p)
    question = "Who chairs the harbour board?"
    rows = lead_features(question, [p], sentences, [0.5] * len(sentences))
    col = {name: i for i, name in enumerate(LEAD_WEIGHTS)}
    by_text = {s.text[:12]: row for s, row in zip(sentences, rows, strict=True)}
    named, byline = by_text["The board's "], by_text["By Staff Rep"]
    restated = by_text["The harbour "]
    assert named[col["names"]] > restated[col["names"]]
    assert byline[col["boilerplate"]] == 1.0 and named[col["boilerplate"]] == 0.0
    assert restated[col["novelty"]] < named[col["novelty"]]
    scores = lead_scores(rows)
    assert scores[list(by_text).index("The board's ")] > scores[list(by_text).index("By Staff Rep")]


@settings(max_examples=60, deadline=None)
@given(
    question=st.text(max_size=80),
    text=st.text(min_size=0, max_size=400),
    dense=st.floats(-1, 1),
)
def test_sentence_features_take_any_text(question: str, text: str, dense: float) -> None:
    p = passage("x", text, text[:30], dense=dense)
    sentences = split_sentences(p)
    rows = lead_features(question, [p], sentences, [dense] * len(sentences))
    assert rows.shape == (len(sentences), len(LEAD_WEIGHTS)) and np.isfinite(rows).all()
    assert ((lead_scores(rows) >= 0) & (lead_scores(rows) <= 1)).all()


CHEFS = (
    "The city's best young chefs were honoured at the annual dinner last night. "
    "The Golden Ladle went to Marta Kowalski of Bistro Nord. "
    "Tickets for the dinner had sold out within an hour."
)


def chosen_by_select(
    question: str, embedder: Embedder, text: str = CHEFS, lead_at: int = 0
) -> list[str]:
    """The quotes select() keeps when sentence `lead_at` is the likeliest lead."""
    p = passage("chefs", text, "Chefs")
    sentences = split_sentences(p)
    for i, s in enumerate(sentences):
        s.lead, s.score = (0.9, 0.9) if i == lead_at else (0.1, 0.5)
    vectors = np.eye(len(sentences), dtype=np.float32)  # no near-duplicates
    composer = ExtractiveComposer(embedder, max_sentences=5, min_relevance=0.3)
    picked = composer.select(sentences, vectors, question)
    for s in picked:  # every quote is the article's own text at its offsets
        assert text[s.start : s.end] == s.text
    return [s.text for s in picked]


def test_a_lead_that_restates_the_question_runs_on_into_the_answer(embedder: Embedder) -> None:
    quotes = chosen_by_select("Which young chef won the prize at the annual dinner?", embedder)
    assert quotes[0] == CHEFS[: CHEFS.index(" Tickets")]  # the restatement and the answer
    assert sum("Golden Ladle" in q for q in quotes) == 1  # not quoted twice
    # Only into a sentence with what is asked for: no number follows, so the lead stands alone.
    alone = chosen_by_select("How many tickets were sold for the dinner?", embedder)
    assert alone[0] == CHEFS[: CHEFS.index(" The Golden")]


WINNER = (
    "Marta Kowalski of Bistro Nord won the Golden Ladle at the annual dinner. "
    "She beat 40 other young chefs, the jury said. "
    "This week, the jury thanked 40 volunteers. "
    "Tickets had sold out within an hour."
)


@pytest.mark.parametrize(
    "opening",
    [
        "She beat",
        "On Monday, she beat",
        "The team beat",
        "That was after she beat",
        "Her team beat",
    ],
)
def test_a_lead_that_points_back_is_quoted_with_what_it_points_to(
    embedder: Embedder, opening: str
) -> None:
    """ "She beat 40 chefs" alone does not say who won: the sentence that names her leads too."""
    text = WINNER.replace("She beat", opening)
    quotes = chosen_by_select("How many chefs did she beat?", embedder, text, lead_at=1)
    assert quotes[0] == text[: text.index(" This week")]
    assert sum("Marta Kowalski" in q for q in quotes) == 1  # not quoted twice


def test_a_lead_that_stands_alone_is_quoted_alone(embedder: Embedder) -> None:
    # "This week" is a time, not a pointer back; the article's first sentence has nothing before.
    quotes = chosen_by_select("How many volunteers were thanked?", embedder, WINNER, lead_at=2)
    assert quotes[0] == "This week, the jury thanked 40 volunteers."
    first = chosen_by_select("Who won the Golden Ladle?", embedder, WINNER, lead_at=0)
    assert first[0] == WINNER[: WINNER.index(" She beat")]
    # A byline before it names no one the lead could point to.
    bylined = "By Staff Reporter, with the city desk. " + WINNER[WINNER.index("She beat") :]
    quotes = chosen_by_select("How many chefs did she beat?", embedder, bylined, lead_at=1)
    assert quotes[0] == "She beat 40 other young chefs, the jury said."


ELECTION = (
    "The election was held on Sunday, with a record turnout of around 2 million voters and "
    "a turnout rate of 58%. "
    "In the functional constituencies, the pan-democracy camp gained a seat. "
    "The turnout was the highest in the history of the council's elections, with around 2 "
    "million voters and a turnout rate of 58%. "
    "Polling stations in Taikoo stayed open until 2:30 the next morning."
)


def test_a_retelling_of_a_quoted_fact_is_not_quoted_and_nothing_pads_its_place(
    embedder: Embedder,
) -> None:
    """The third sentence retells the first (a sentence encoder puts them at cosine ~0.7,
    so no vector test catches it): quoting it wastes the reader's time, and so would the
    filler that a freed place would pull in."""
    p = passage("vote", ELECTION, "Record turnout in council election")
    sentences = split_sentences(p)
    for i, s in enumerate(sentences):
        s.lead, s.score = (0.9, 0.9) if i == 0 else (0.1, 0.5)
    vectors = np.eye(len(sentences), dtype=np.float32)
    composer = ExtractiveComposer(embedder, max_sentences=3, min_relevance=0.3)
    quotes = [s.text for s in composer.select(sentences, vectors, "What was the turnout?")]
    assert quotes == [sentences[0].text, sentences[1].text]


RECALL = (  # the links stand on lines of their own, as in the paper's own page
    "Ford is recalling 2.9 million vehicles that may roll away while parked.\n\n"
    "Earlier recalls:Ford Mustangs, F-Series and GMC trucks among latest auto recalls\n\n"
    "It is the third major recall for the automaker this month.\n\n"
    "More:A timeline of the year's biggest recalls.\n\n"
    "Owners will be notified by mail in July."
)


@pytest.mark.parametrize(
    ("text", "link"),
    [
        ("Earlier recalls:Ford Mustangs, F-Series and GMC trucks among latest auto recalls", True),
        ("'It’s amazing':Baby woolly mammoth found frozen in Canada", True),
        ("► MORE:Des Moines mayor declares state of emergency.", True),
        ("Charlestown:Hundreds of people turned out for an auction at a former plant.", False),
        ("A re:Store shop in central Moscow.", False),
        ("Note: the figures are preliminary", False),
        ("At 10:30 the meeting began", False),
    ],
)
def test_a_link_to_another_story_is_told_from_the_text(text: str, link: bool) -> None:
    assert is_story_link(text) is link


def test_a_link_to_another_story_is_never_quoted(embedder: Embedder) -> None:
    """A newspaper's "Label:Headline" line inside the article is another story's headline:
    quoting it would cite this article for what it does not say."""
    p = passage("recall", RECALL, "Ford recalls 2.9 million vehicles")
    sentences = split_sentences(p)
    assert any(is_story_link(s.text) for s in sentences)
    for s in sentences:  # the links look like the best quotes and the best lead
        s.lead, s.score = (0.99, 0.99) if is_story_link(s.text) else (0.1, 0.5)
    vectors = np.eye(len(sentences), dtype=np.float32)
    composer = ExtractiveComposer(embedder, max_sentences=5, min_relevance=0.3)
    quotes = [s.text for s in composer.select(sentences, vectors, "It recalled how many?")]
    assert quotes and not any(":" in q for q in quotes), quotes
    # "It is the third ..." points back: it is joined to the sentence before, never to a link.
    sentences[2].lead = 0.95
    quotes = [s.text for s in composer.select(sentences, vectors, "Which recall is this?")]
    assert quotes[0] == "It is the third major recall for the automaker this month.", quotes
