from trials.models.sentences import split_sentences


def test_dateline_is_dropped():
    assert split_sentences("Washington (CNN)Clinton spoke. She left.") == ["Clinton spoke.", "She left."]
    assert split_sentences("LONDON (Wire) -- Rain fell. It stopped.") == ["Rain fell.", "It stopped."]


def test_abbreviations_and_initials_do_not_split():
    text = "Dr. A.J. Smith of the U.S. Army met Mr. Lee at 9 a.m. Monday. They talked."
    assert split_sentences(text) == ["Dr. A.J. Smith of the U.S. Army met Mr. Lee at 9 a.m. Monday.", "They talked."]


def test_quotes_close_sentences():
    text = '"We are ready," she said. "It is done." Then it rained.'
    assert split_sentences(text) == ['"We are ready," she said.', '"It is done."', "Then it rained."]


def test_decimals_and_questions():
    assert split_sentences("Prices rose 3.5 percent. Why? Nobody knows!") == [
        "Prices rose 3.5 percent.", "Why?", "Nobody knows!"]
