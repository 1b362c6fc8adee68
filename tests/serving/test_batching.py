"""One engine call per batch, results split back per request, and a failing request fails alone."""
from infersweep.serving.batching import chunks, over_limit, run_batch


class Engine:
    """Summarizes by upper-casing; refuses any document containing 'POISON' (as a broken input would)."""

    def __init__(self):
        self.calls: list[list[str]] = []

    def __call__(self, documents):
        self.calls.append(list(documents))
        if any("POISON" in d for d in documents):
            raise ValueError("cannot read\nthis document")
        return [d.upper() for d in documents]


def test_all_requests_of_a_batch_go_in_one_call_and_come_back_in_order():
    engine = Engine()
    outcome = run_batch([["a", "b"], ["c"], ["d", "e", "f"]], engine)
    assert engine.calls == [["a", "b", "c", "d", "e", "f"]]
    assert [r.summaries for r in outcome.results] == [["A", "B"], ["C"], ["D", "E", "F"]]
    assert (outcome.documents, outcome.engine_calls) == (6, 1)
    assert all(r.error is None and r.status == 200 for r in outcome.results)


def test_a_request_that_breaks_the_engine_fails_alone():
    engine = Engine()
    outcome = run_batch([["a"], ["POISON b"], ["c", "d"]], engine)
    first, bad, last = outcome.results
    assert first.summaries == ["A"] and last.summaries == ["C", "D"]
    assert bad.summaries is None and bad.status == 500 and bad.reason == "model_error"
    assert bad.error == "the model failed on this request: cannot read this document"  # one line
    assert outcome.engine_calls == 4  # the batch, then each request alone


def test_a_document_beyond_the_model_limit_is_413_and_never_reaches_the_engine():
    engine = Engine()
    count = lambda text: len(text.split())  # noqa: E731  (a whitespace tokenizer)
    long = "word " * 50
    outcome = run_batch([["short one"], ["fine", long], ["another"]], engine, count, limit=20)
    assert engine.calls == [["short one", "another"]]
    ok1, over, ok2 = outcome.results
    assert ok1.summaries == ["SHORT ONE"] and ok2.summaries == ["ANOTHER"]
    assert over.status == 413 and over.reason == "too_long" and over.error.startswith("document 2 has 50 tokens")


def test_over_limit_tokenizes_only_documents_longer_than_the_limit_in_bytes():
    seen = []
    count = lambda text: seen.append(text) or len(text.split())  # noqa: E731
    assert over_limit(["tiny", "x" * 30], count, limit=20) is None  # 30 bytes but one token
    assert seen == ["x" * 30]
    assert over_limit(["a b"], count, limit=None) is None


def test_a_batch_where_every_request_is_refused_calls_nothing():
    engine = Engine()
    outcome = run_batch([["w " * 30]], engine, lambda t: len(t.split()), limit=10)
    assert engine.calls == [] and outcome.engine_calls == 0 and outcome.results[0].status == 413


def test_chunks_never_exceed_the_batch_size():
    assert chunks(list("abcde"), 2) == [["a", "b"], ["c", "d"], ["e"]]
    assert chunks(["a"], 8) == [["a"]]
