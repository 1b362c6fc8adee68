import pytest

from infersweep.trials.quality import rouge


def test_identical_text_scores_100():
    scores = rouge(["The cat sat on the mat.\nIt was happy."], ["The cat sat on the mat.\nIt was happy."])
    assert scores == pytest.approx({"rouge1": 100.0, "rouge2": 100.0, "rougeLsum": 100.0})


def test_hand_checked_case():
    # prediction "the cat ran" vs reference "the cat sat": unigrams 2/3 match -> P=R=F=2/3;
    # bigrams: "the cat" matches 1 of 2 -> F=1/2; LCS "the cat" = 2 -> F=2/3
    scores = rouge(["the cat ran"], ["the cat sat"])
    assert scores["rouge1"] == pytest.approx(200 / 3)
    assert scores["rouge2"] == pytest.approx(50.0)
    assert scores["rougeLsum"] == pytest.approx(200 / 3)


def test_stemming_is_on():
    assert rouge(["cats running"], ["cat run"])["rouge1"] == pytest.approx(100.0)


def test_lsum_uses_sentence_newlines():
    # the union LCS over predicted sentences recovers "a b c d"; one line only finds "a b"
    assert rouge(["c d\na b"], ["a b c d"])["rougeLsum"] == pytest.approx(100.0)
    assert rouge(["c d a b"], ["a b c d"])["rougeLsum"] == pytest.approx(50.0)


def test_references_are_split_into_sentences_like_predictions():
    # rougeLsum takes lines as sentences: a one-line reference of two sentences is scored
    # sentence by sentence, exactly as the same reference written one sentence per line
    prediction = "Cats sleep all day. Dogs bark loudly."
    one_line, per_line = "Dogs bark loudly. Cats sleep all day.", "Dogs bark loudly.\nCats sleep all day."
    assert rouge([prediction], [one_line])["rougeLsum"] == pytest.approx(100.0)
    assert rouge([prediction], [one_line]) == pytest.approx(rouge([prediction], [per_line]))


def test_mismatched_lengths_raise():
    with pytest.raises(ValueError, match="2 predictions for 1"):
        rouge(["a", "b"], ["a"])
