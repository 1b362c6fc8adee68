import numpy as np

from trials.models.extractive import forward_centrality, select_sentences

SENTENCES = [f"Sentence number {i} has enough words to be eligible here." for i in range(8)]


def test_selects_k_in_document_order():
    rng = np.random.default_rng(0)
    picked = select_sentences(SENTENCES, rng.normal(size=(8, 16)), 3)
    assert len(picked) == 3 and picked == sorted(picked) and len(set(picked)) == 3


def test_short_documents_are_returned_whole():
    assert select_sentences(SENTENCES[:2], np.eye(2), 3) == [0, 1]


def test_redundancy_control_skips_a_duplicate():
    emb = np.eye(8)
    emb[1] = emb[0]  # sentence 1 says what sentence 0 says
    picked = select_sentences(SENTENCES, emb, 3)
    assert not {0, 1} <= set(picked)


def test_the_encoder_decides_beyond_the_lead():
    # sentence 5 is echoed by everything after it: it should beat a lead sentence
    emb = np.hstack([np.eye(8) * 0.1, np.zeros((8, 1))])
    emb[5:, 8] = 1.0
    assert 5 in select_sentences(SENTENCES, emb, 3)


def test_forward_centrality_counts_later_sentences_only():
    sims = np.ones((3, 3))
    sims[0, 2] = sims[2, 0] = 0.0
    centrality = forward_centrality(sims)
    assert centrality[2] == 0.0 and centrality[1] > 0
