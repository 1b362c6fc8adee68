import numpy as np
import pytest

from infersweep.trials.models.extractive import forward_centrality, select_sentences

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
    # upper-triangle mean 2/3: the edges above it are 0->1 and 1->2 (1/3 each); 2 has no later sentence
    assert centrality.tolist() == pytest.approx([1 / 3, 1 / 3, 0.0])


def test_a_word_budget_picks_sentences_until_it_is_reached():
    rng = np.random.default_rng(0)
    emb = rng.normal(size=(8, 16))
    picked = select_sentences(SENTENCES, emb, words=15)  # 10 words each: two reach 15
    assert len(picked) == 2 and picked == sorted(picked)
    assert select_sentences(SENTENCES[:2], emb[:2], words=25) == [0, 1]  # shorter than the budget


def test_auto_length_is_the_median_reference_sentence_count():
    from infersweep.trials.models.extractive import auto_sentences

    assert auto_sentences(["One. Two.", "One. Two. Three.", "One.\nTwo.\nThree.\nFour."]) == 3
    assert auto_sentences(["One. Two.", "One."]) == 2  # a half rounds up
    assert auto_sentences(["Only one sentence here."] * 3) == 1
    assert auto_sentences([" ".join(["Again."] * 30)]) == 10  # kept within 1-10


def test_summary_length_setting_validates_and_keeps_old_trial_ids():
    from pydantic import ValidationError

    from infersweep.trials.spec import TrialSpec

    assert TrialSpec().summary_length == "auto"
    assert TrialSpec(summary_length=5).summary_length == "5"
    assert TrialSpec(summary_length="60 words").summary_length == "60w"
    for bad in ("0", "3.5", "three", "2w", "21"):
        with pytest.raises(ValidationError, match="summary length"):
            TrialSpec(summary_length=bad)
    with pytest.raises(ValidationError, match="applies to the extractive task"):
        TrialSpec(task="seq2seq", summary_length="3")
    # the old name of the setting still works and agrees with the new one
    assert TrialSpec(extractive={"num_sentences": 5}).summary_length == "5"
    with pytest.raises(ValidationError, match="disagree"):
        TrialSpec(extractive={"num_sentences": 5}, summary_length="4")
    # a spec that says what older specs said hashes without the field (dedup, resume)
    for spec in (TrialSpec(), TrialSpec(extractive={"num_sentences": 5})):
        assert spec.trial_id() == _id_without_summary_length(spec)
    assert TrialSpec(summary_length="3").trial_id() != TrialSpec().trial_id()


def _id_without_summary_length(spec) -> str:
    import hashlib
    import json

    fields = spec.model_dump(mode="json")
    del fields["summary_length"]
    del fields["causal"]  # at its default: not hashed either (the causal task's settings came later)
    del fields["extractive"]["padding_buckets"]  # likewise (later still)
    del fields["quantization"]  # likewise (the quality bound, later again)
    return hashlib.sha1(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:12]


def test_plan_chunks_cuts_where_padding_costs_more_than_a_forward():
    from infersweep.trials.models.extractive import FORWARD_COST_TOKENS, plan_chunks

    lengths = [12, 100, 11, 98, 10, 99]
    plain = plan_chunks(lengths, max_rows=64, bucket=False)
    assert plain == [[4, 2, 0, 3, 5, 1]]  # one forward, every row padded to 100
    bucketed = plan_chunks(lengths, max_rows=64)
    assert bucketed == [[4, 2, 0], [3, 5, 1]]  # the short ones no longer padded to 100
    assert sorted(r for c in bucketed for r in c) == list(range(6))
    # similar lengths: another forward would cost more than the padding it saves
    assert plan_chunks([20, 21, 22, 23], max_rows=64) == [[0, 1, 2, 3]]
    assert 4 * 3 < FORWARD_COST_TOKENS
    # never more than max_rows in a forward
    assert max(len(c) for c in plan_chunks([30] * 10, max_rows=4)) == 4
    assert plan_chunks([], max_rows=4) == []


@pytest.fixture(scope="module")
def sample_documents():
    from infersweep.trials.data import load_examples

    return [e.document for e in load_examples("sample")[:4]]


def test_padding_buckets_keep_the_summaries_and_pad_less(sample_documents):
    import torch

    from infersweep.trials import TrialSpec
    from infersweep.trials.models.extractive import ExtractiveSummarizer

    results = {}
    for bucket in (False, True):
        adapter = ExtractiveSummarizer(TrialSpec(summary_length="3", extractive={"padding_buckets": bucket}))
        for batch_size in (1, 4):
            batches = adapter.batches(sample_documents, batch_size)
            with torch.inference_mode():
                embeddings = [adapter.embed_batch(b, adapter.module) for b in batches]
                summaries = [s for b in batches for s in adapter.summarize_batch(b, adapter.module)]
            real, computed = map(sum, zip(*(b.token_counts() for b in batches)))
            results[bucket, batch_size] = (embeddings, summaries, 1 - real / computed)
    for batch_size in (1, 4):
        (old_emb, old_sum, old_pad), (new_emb, new_sum, new_pad) = results[False, batch_size], results[True, batch_size]
        assert new_sum == old_sum
        for old, new in zip(old_emb, new_emb):
            np.testing.assert_allclose(new, old, atol=2e-5)
        assert new_pad < old_pad, (batch_size, old_pad, new_pad)
    assert results[True, 1][2] < 0.7 * results[False, 1][2]  # one document per batch: a third of it gone, at least


def test_padding_buckets_keep_old_trial_ids():
    from infersweep.trials import TrialSpec

    assert TrialSpec().trial_id() == "4461bcfacd4d"  # as before the setting (tests/trials/test_causal.py)
    assert TrialSpec(extractive={"padding_buckets": True}).trial_id() == "4461bcfacd4d"
    assert TrialSpec(extractive={"padding_buckets": False}).trial_id() != "4461bcfacd4d"
