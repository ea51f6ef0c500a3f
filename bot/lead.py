"""The lead sentence: what a question asks for, and which sentence of the passages answers it.

A question's type (who -> a name, when -> a date, where -> a place, how many -> a number) and
cheap features of each sentence (closeness to the question, its rare terms, whether it brings
something new or merely restates the question or the title, bylines and boilerplate) make a
logistic score: the composer leads with the best sentence of the best source and quotes the
next best. The weights were fitted by bench/lead_fit.py on the dev set's EARLY weeks only.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

from bot.models import Passage
from bot.query import STOPWORDS
from bot.sentence_store import cuts

# What a question asks for, and what a sentence that answers it contains.
MONTHS = (
    "january|february|march|april|may|june|july|august|september|october|november|december|"
    "jan|feb|mar|apr|jun|jul|aug|sep|sept|oct|nov|dec"
)
NUMBER_WORDS = (
    "one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|dozen|dozens|hundreds?|"
    "thousands?|millions?|billions?|trillions?|half|percent"
)
ANSWER_SHAPES = {
    "when": re.compile(
        rf"\b(?:{MONTHS}|monday|tuesday|wednesday|thursday|friday|saturday|sunday|"
        r"yesterday|today|tomorrow|(?:19|20)\d\d|last (?:week|month|year))\b",
        re.IGNORECASE,
    ),
    "number": re.compile(rf"\d|\b(?:{NUMBER_WORDS})\b", re.IGNORECASE),
    "where": re.compile(r"\b(?:in|at|from|near|to)\s+(?:the\s+)?[A-Z][a-z]+"),
    "why": re.compile(
        r"\b(?:because|due to|after|as a result|so that|in order to|reason|amid|caused|"
        r"following|since)\b",
        re.IGNORECASE,
    ),
    "outcome": re.compile(
        r"\b(?:will|would|could|plans? to|expected to|set to|agreed|announced|decided)\b",
        re.IGNORECASE,
    ),
}


def question_type(question: str) -> str:
    """entity (who/which/what), when, where, number (how many/much), why, outcome, or other."""
    q = question.lower().strip()
    if re.search(r"\bhow (?:many|much|long|old|far|often)\b|\bwhat (?:percent|share|number)", q):
        return "number"
    if re.search(r"\bwhen\b|\bwhat (?:year|day|date|month|time)\b", q):
        return "when"
    if re.search(r"\bwhere\b|\bwhich (?:country|city|state|nation|region|place)\b", q):
        return "where"
    if re.search(r"\bwhy\b", q):
        return "why"
    if re.search(r"\bwhat (?:will|would|could|happens?|happened)\b", q):
        return "outcome"
    if re.search(r"\b(?:who|whom|whose|which|what)\b", q):
        return "entity"
    return "other"


# Question words of the other supported languages, in question_type's order of precedence.
# Used with the multilingual backend only (English questions never reach them): the answer's
# shape (a number, a date, a name) is looked for in the article, whatever its language.
OTHER_QUESTION_WORDS = [
    ("number", r"wie viele?|сколько|скільки|kaç|ne kadar"),
    ("when", r"wann|когда|коли|ne zaman|hangi (?:tarih|yıl|gün|ay)"),
    ("where", r"wo|wohin|woher|где|куда|откуда|де|куди|звідки|nerede|nereye|nereden"),
    ("why", r"warum|weshalb|wieso|почему|зачем|чому|навіщо|neden|niçin|niye"),
    ("entity", r"wer|wen|wem|welche[rsmn]?|кто|кого|какой|какая|какие|хто|який|яка|які|kim|hangi"),
]


def other_language_type(question: str) -> str:
    """question_type for a question in German, Russian, Ukrainian or Turkish."""
    q = question.lower()
    for kind, words in OTHER_QUESTION_WORDS:
        if re.search(rf"(?<!\w)(?:{words})(?!\w)", q):
            return kind
    return "other"


def answers_type(kind: str, question: str, sentence: str) -> bool:
    """Whether the sentence holds something of the kind asked for, not already in the question."""
    if kind == "entity":
        asked = {w.lower() for w in re.findall(r"\w+", question)}
        names = re.findall(r"(?<![.!?]\s)(?<!^)\b[A-Z][\w'-]+", sentence)
        return any(n.lower() not in asked and n.lower() not in STOPWORDS for n in names)
    shape = ANSWER_SHAPES.get(kind)
    if shape is None:
        return False
    asked = {m.group().lower() for m in shape.finditer(question)}
    return any(m.group().lower() not in asked for m in shape.finditer(sentence))


@dataclass
class Sentence:
    passage: Passage
    start: int  # offsets into the article text
    end: int
    text: str
    score: float = 0.0  # worth quoting (0..1)
    lead: float = 0.0  # answers the question, among its article's sentences (0..1)


def split_sentences(passage: Passage) -> list[Sentence]:
    """Sentences of a passage, split by its article's language, with article offsets (the
    same cuts that ingest stores sentence vectors for: bot/sentence_store.py)."""
    return sentences_at(passage, cuts(passage.chunk.text, passage.language))


def sentences_at(passage: Passage, spans: list[tuple[int, int]]) -> list[Sentence]:
    """Sentences of a passage from (start, end) offsets into its chunk's text."""
    chunk = passage.chunk
    return [Sentence(passage, chunk.start + a, chunk.start + b, chunk.text[a:b]) for a, b in spans]


def query_terms(question: str) -> dict[str, float]:
    """Content words of the question, weighted: names and numbers count double."""
    terms: dict[str, float] = {}
    for match in re.finditer(r"\w+", question):
        word = match.group()
        if word.lower() in STOPWORDS or (len(word) < 2 and not word.isdigit()):
            continue
        heavy = (word[0].isupper() and match.start() > 0) or any(ch.isdigit() for ch in word)
        terms[word.lower()] = max(terms.get(word.lower(), 0.0), 2.0 if heavy else 1.0)
    return terms


def coverage(terms: dict[str, float], text: str) -> float:
    """Share of the question's term weight present in the text (prefix match ~ stemming)."""
    if not terms:
        return 0.0
    words = {w[:6] for w in re.findall(r"\w+", text.lower())}
    hit = sum(weight for term, weight in terms.items() if term[:6] in words)
    return hit / sum(terms.values())


# -- the sentence scorer --------------------------------------------------------------------

# Fitted by bench/lead_fit.py (logistic regression, answer string in the sentence = 1, classes
# balanced, C=0.1) on the EARLY weeks of the RealTime QA dev set only (question dates before
# 2022-07-22): LEAD_WEIGHTS on the sentences of each question's best-ranked article (the lead
# is chosen among them), QUOTE_WEIGHTS on every sentence of the passages.
LEAD_WEIGHTS: dict[str, float] = {
    "bias": -0.31,
    "dense": 0.38,  # cosine to the question
    "coverage": 0.38,  # share of the question's term weight (names and numbers double)
    "rare": 0.47,  # ... weighted by how few of the candidate sentences name each term
    "neighbour": 0.13,  # the best rare-term share of the sentences just before or after
    "rank": -0.17,  # 1 / (1 + its passage's rank after reranking)
    "top_article": -0.31,  # from the best-ranked article
    "type": 0.25,  # holds what the question asks for, not already in it (a name, a date, ...)
    "names": 0.51,  # capitalised names the question does not have (up to 3)
    "numbers": 0.14,  # a number the question does not have
    "novelty": -0.5,  # share of its content words that are not the question's
    "title_echo": 0.12,  # share of its content words that are the title's
    "boilerplate": -0.25,  # a byline, a photo credit, a newsletter pitch
    "position": 0.73,  # exp(-offset in the article / 1,000 characters): news leads first
    "length": 0.07,  # characters / 300, at most 1
    "asks": -0.12,  # ends with a question mark
}
QUOTE_WEIGHTS: dict[str, float] = {
    "bias": -1.02,
    "dense": 1.5,
    "coverage": 0.67,
    "rare": 0.79,
    "neighbour": 0.62,
    "rank": 0.22,
    "top_article": 1.19,
    "type": 0.85,
    "names": 0.35,
    "numbers": 0.05,
    "novelty": -1.46,
    "title_echo": 0.39,
    "boilerplate": -0.62,
    "position": 0.48,
    "length": -0.52,
    "asks": -0.32,
}
BOILERPLATE = re.compile(
    r"^(?:by |photo|image|video|watch|read more|click|sign up|subscribe|follow|advertisement"
    r"|related|copyright)|contributed to this report|reporting by|editing by|getty images"
    r"|all rights reserved|newsletter|https?://|www\.|@\w",
    re.IGNORECASE,
)
# A newspaper's link to another of its stories, set in the article's text: a label, a colon
# with no space, that story's headline ("Earlier recalls:Ford Mustangs among latest recalls",
# "More:A timeline of the breach"). Never quoted: it is another story's headline. A line that
# ends like a sentence is kept unless its label says it is a link: a roundup's
# "Charlestown:Hundreds of people turned out ..." is the news itself.
STORY_LINK = re.compile(r"^\W{0,3}[^.!?:]{1,80}?[\w’'\")]:(?=[A-Z\"“‘'])")
LINK_LABEL = re.compile(r"^\W{0,3}(?:more|related|read more|watch|see also|also)\s*:", re.I)
SENTENCE_END = re.compile(r"[.!?][\"”’')]*$")


def is_story_link(text: str) -> bool:
    text = text.strip()
    if not STORY_LINK.match(text):
        return False
    return bool(LINK_LABEL.match(text)) or not SENTENCE_END.search(text)


# A sentence that opens by pointing back to one before it: a pronoun or "this/that" as its
# subject (not "this week"), "the show/team/..." (a thing the article named earlier), or either
# after a short opening phrase ("Tuesday night, he ..."). English words only: a lead in another
# language is quoted as it stands.
ANAPHOR = re.compile(
    r"^(?:[^,.;:]{1,30},\s+)?(?:he|she|it|they|his|her|its|their|"
    r"(?:this|that|these|those)(?!\s+(?:week|weekend|month|year|morning|afternoon|evening|"
    r"night|season|summer|spring|autumn|fall|winter|time)\b))\b"
    r"|^the (?:show|series|film|movie|team|club|company|firm|group|album|song|book|player|"
    r"star|singer|actor|actress|band|country|city|state|park|bill|law|deal|move)\b",
    re.IGNORECASE,
)


def stems(text: str) -> set[str]:
    return {w[:6] for w in re.findall(r"\w+", text.lower()) if w not in STOPWORDS and len(w) > 1}


def share(part: set[str], whole: set[str]) -> float:
    return len(part & whole) / len(part) if part else 0.0


def lead_features(
    question: str,
    passages: list[Passage],
    sentences: list[Sentence],
    dense: list[float],
    kind: str = "",
) -> np.ndarray:
    """One row per sentence, in the order of LEAD_WEIGHTS; `dense`: each one's cosine to the
    question; `kind`: the question's type (question_type's, when not given)."""
    kind = kind or question_type(question)
    terms = query_terms(question)
    asked = stems(question)
    words = [stems(s.text) for s in sentences]
    # A term few candidate sentences name is what singles out the answer's sentence.
    n = len(sentences)
    idf = {t: math.log((n + 1) / (1 + sum(t[:6] in s for s in words))) for t in terms}
    total = sum(idf[t] * w for t, w in terms.items()) or 1.0
    rare = [sum(idf[t] * w for t, w in terms.items() if t[:6] in s) / total for s in words]
    rank: dict[int, int] = {}
    for i, p in enumerate(passages):
        rank.setdefault(id(p), i)
    top = passages[0].article_id if passages else ""
    rows = []
    for i, s in enumerate(sentences):
        p = s.passage
        lexical = p.same_language
        near = [
            rare[j] for j in (i - 1, i + 1) if 0 <= j < n and sentences[j].passage is p and lexical
        ]
        names = re.findall(r"(?<![.!?]\s)(?<!^)\b[A-Z][\w'-]+", s.text)
        new_names = {m.lower() for m in names} - {w.lower() for w in re.findall(r"\w+", question)}
        numbers = set(re.findall(r"\d[\d,.]*", s.text)) - set(re.findall(r"\d[\d,.]*", question))
        stand_in = min(1.0, max(0.0, dense[i]))
        rows.append(
            [
                1.0,
                dense[i],
                coverage(terms, s.text) if lexical else stand_in,
                rare[i] if lexical else stand_in,
                max(near, default=0.0),
                1.0 / (1.0 + rank[id(p)]),
                float(p.article_id == top),
                float(answers_type(kind, question, s.text)),
                min(3, len(new_names - STOPWORDS)) / 3,
                float(bool(numbers)),
                1.0 - share(words[i], asked) if lexical else 0.5,
                share(words[i], stems(p.title)) if lexical else 0.0,
                float(bool(BOILERPLATE.search(s.text))),
                math.exp(-s.start / 1000.0),
                min(1.0, len(s.text) / 300),
                float(s.text.rstrip("\"'”’ ").endswith("?")),
            ]
        )
    return np.array(rows, dtype=float).reshape(len(rows), len(LEAD_WEIGHTS))


def lead_scores(features: np.ndarray, weights: dict[str, float] | None = None) -> np.ndarray:
    """The probability that each sentence holds the answer (0..1)."""
    w = weights or LEAD_WEIGHTS
    vector = np.array([w.get(name, 0.0) for name in LEAD_WEIGHTS])
    return 1.0 / (1.0 + np.exp(-(features @ vector)))
