import pytest

from infersweep.trials.models.sentences import split_sentences


def test_dateline_is_dropped():
    assert split_sentences("Washington (CNN)Clinton spoke. She left.") == ["Clinton spoke.", "She left."]
    assert split_sentences("LONDON (Wire) -- Rain fell. It stopped.") == ["Rain fell.", "It stopped."]
    assert split_sentences("LONDON, England (CNN) -- Rain fell.") == ["Rain fell."]
    assert split_sentences("WASHINGTON (Reuters) - Stocks rose.") == ["Stocks rose."]
    assert split_sentences("(CNN) -- Rain fell.") == ["Rain fell."]
    assert split_sentences("(NEWS) Forecasters warned.") == ["Forecasters warned."]


def test_daily_mail_byline_is_dropped():
    text = ("By . Sam Webb . PUBLISHED: . 05:22 EST, 12 November 2013 . | . UPDATED: . 07:04 EST, "
            "12 November 2013 . A man was jailed. He wept.")
    assert split_sentences(text) == ["A man was jailed.", "He wept."]


@pytest.mark.parametrize("text", [
    "The Welsh Rugby Union (WRU) said on Monday it would review the tackle law. Clubs agreed.",
    "Acme Corp (ACME) reported record profits. Shares rose.",
    "(Optional) Install the package first. Then run it.",
    "Sales at Globex (GBX) fell sharply. Analysts were surprised.",
])
def test_parenthesised_names_at_the_start_are_not_datelines(text):
    assert " ".join(split_sentences(text)) == text


def test_dialogue_turns_stay_whole_with_their_speaker():
    text = ("Amanda: I baked cookies. Do you want some?\r\nJerry: Sure! Which kind?\r\n"
            "Amanda: Chocolate. I'll bring you some tomorrow :-)")
    assert split_sentences(text) == ["Amanda: I baked cookies. Do you want some?", "Jerry: Sure! Which kind?",
                                     "Amanda: Chocolate. I'll bring you some tomorrow :-)"]
    # a line without a speaker continues the turn before it; prose with a colon is no dialogue
    assert split_sentences("#Person1#: Hi. How are you?\n#Person2#: Fine.\nThanks for asking.") == [
        "#Person1#: Hi. How are you?", "#Person2#: Fine. Thanks for asking."]
    assert split_sentences("Note: this is prose. It goes on.") == ["Note: this is prose.", "It goes on."]


def test_abbreviations_and_initials_do_not_split():
    text = "Dr. A.J. Smith of the U.S. Army met Mr. Lee at 9 a.m. Monday. They talked."
    assert split_sentences(text) == ["Dr. A.J. Smith of the U.S. Army met Mr. Lee at 9 a.m. Monday.", "They talked."]


def test_quotes_close_sentences():
    text = '"We are ready," she said. "It is done." Then it rained.'
    assert split_sentences(text) == ['"We are ready," she said.', '"It is done."', "Then it rained."]


def test_decimals_and_questions():
    assert split_sentences("Prices rose 3.5 percent. Why? Nobody knows!") == [
        "Prices rose 3.5 percent.", "Why?", "Nobody knows!"]
