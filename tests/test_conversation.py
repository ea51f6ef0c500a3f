"""Inline filters and follow-up detection, as journalists type them."""

from __future__ import annotations

import datetime as dt

import pytest

from bot.conversation import Conversation, FilterError, is_follow_up, split_filters
from bot.services import ChatMemory

TODAY = dt.date(2025, 6, 1)


def test_filters_are_taken_out_of_the_question() -> None:
    question, filters = split_filters(
        'Who won? since:2025-01-01 until:2025/03/31 source:"AP News"', as_of=TODAY
    )
    assert question == "Who won?"
    assert (filters.since, filters.until) == (dt.date(2025, 1, 1), dt.date(2025, 3, 31))
    assert (filters.source, filters.as_of) == ("AP News", TODAY)
    assert split_filters("SOURCE:Reuters budget")[1].source == "Reuters"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("Who? since:yesterday", "since:YYYY-MM-DD"),
        ("Who? until:2025-02-30", "until:YYYY-MM-DD"),
        ("Who? since:2025-02-01 until:2025-01-01", "after until"),
    ],
)
def test_bad_filters_say_what_to_type(text: str, message: str) -> None:
    with pytest.raises(FilterError, match=message):
        split_filters(text)


@pytest.mark.parametrize(
    "question",
    [
        "and how much did they pay?",
        "What about Ankara?",
        "why did they do it?",
        "But when?",
        "when did this happen?",
        "is that true?",
    ],
)
def test_follow_ups_are_recognised(question: str) -> None:
    assert is_follow_up(question)


@pytest.mark.parametrize(
    "question",
    [
        "Why would the EU buy Russian S-400 systems from Turkey?",
        "Is this year's budget late?",
        "What did Thomas Barak urge Turkey to do?",
        "",
    ],
)
def test_standalone_questions_are_not_follow_ups(question: str) -> None:
    assert not is_follow_up(question)


def test_a_follow_up_borrows_the_previous_question_and_a_new_question_does_not() -> None:
    conversation = Conversation()
    assert conversation.standalone("and how much did they pay?") == "and how much did they pay?"
    conversation.remember("Why would the EU buy Russian S-400 systems from Turkey?")
    query = conversation.standalone("and how much did they pay?")
    assert "S-400" in query and "Turkey" in query
    assert conversation.standalone("Who won the Hajj stampede inquiry?") == (
        "Who won the Hajj stampede inquiry?"
    )


def test_chat_memory_is_per_user_and_bounded() -> None:
    memory = ChatMemory(max_users=2)
    memory.conversation(1).remember("S-400 Turkey")
    assert not memory.conversation(2).queries  # another user starts afresh
    memory.conversation(3)  # a third user: the least recent (1) is forgotten
    assert len(memory) == 2 and not memory.conversation(1).queries
    for n in range(10):
        memory.conversation(3).remember(f"question {n}")
    assert len(memory.conversation(3).queries) == 3  # turns are bounded too
