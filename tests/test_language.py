"""Language detection: the bundled model, no downloads, sensible on short and hostile input."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from bot.language import SUPPORTED, detect, language_of


def test_questions_in_each_supported_language() -> None:
    questions = {
        "en": "Why is the EU considering buying Russian missile systems from Turkey?",
        "de": "Warum erwägt die EU, russische Raketensysteme von der Türkei zu kaufen?",
        "ru": "Почему ЕС рассматривает покупку российских ракетных систем у Турции?",
        "uk": "Чому ЄС розглядає купівлю російських ракетних систем у Туреччини?",
        "tr": "AB neden Türkiye'den Rus füze sistemleri almayı düşünüyor?",
    }
    for code, question in questions.items():
        assert language_of(question, among=SUPPORTED) == code, question


def test_text_without_enough_letters_has_no_language() -> None:
    assert detect("S-4") == ("", 0.0)
    assert language_of("?? 42 !!", default="en") == "en"


@settings(max_examples=60, deadline=None)
@given(st.text(max_size=200))
def test_any_text_gets_a_code_or_the_default(text: str) -> None:
    code = language_of(text, default="xx")
    assert code == "xx" or (code.isalpha() and 2 <= len(code) <= 3)
