"""ROUGE with rouge-score: F1 x 100, Porter stemming, ROUGE-Lsum over sentences.

rouge-score's rougeLsum takes a text's sentences to be its lines (newline-separated); it does not
split them itself. So references and predictions are both brought to one sentence per line the
same way before scoring: each line is split further with the project's sentence splitter
(`trials.models.sentences.sentence_lines`, which drops nothing). A reference written as one
line of several sentences is therefore scored sentence by sentence, exactly like a reference
whose sentences are already on separate lines. ROUGE-1/2 do not depend on line breaks.
"""
from __future__ import annotations

ROUGE_TYPES = ("rouge1", "rouge2", "rougeLsum")


def sentences_per_line(text: str) -> str:
    """`text` with one sentence per line: how both sides are given to rougeLsum."""
    from infersweep.trials.models.sentences import sentence_lines

    return "\n".join(sentence_lines(text))


def rouge_per_document(predictions: list[str], references: list[str]) -> dict[str, list[float]]:
    """ROUGE-1/2/Lsum F1 (0-100) of each document, in order: what paired comparisons need."""
    from rouge_score import rouge_scorer

    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions for {len(references)} references")
    if not predictions:
        raise ValueError("no predictions to score")
    scorer = rouge_scorer.RougeScorer(list(ROUGE_TYPES), use_stemmer=True)
    per_document: dict[str, list[float]] = {key: [] for key in ROUGE_TYPES}
    for pred, ref in zip(predictions, references):
        scores = scorer.score(sentences_per_line(ref), sentences_per_line(pred))
        for key in ROUGE_TYPES:
            per_document[key].append(100 * scores[key].fmeasure)
    return per_document


def mean_scores(per_document: dict[str, list[float]]) -> dict[str, float]:
    return {key: sum(values) / len(values) for key, values in per_document.items()}


def rouge(predictions: list[str], references: list[str]) -> dict[str, float]:
    """Mean ROUGE-1/2/Lsum F1 (0-100); both sides are split into sentences (see the module doc)."""
    return mean_scores(rouge_per_document(predictions, references))


def agreement_per_document(outputs: list[str], baseline_outputs: list[str]) -> list[float]:
    """ROUGE-L F1 (0-100, stemmed) of each output against the baseline's output for the same
    document: how far a variant's summaries drift from the baseline's own (100: the same words in
    the same order), which shows a drifting variant even where reference ROUGE is noisy."""
    from rouge_score import rouge_scorer

    if len(outputs) != len(baseline_outputs):
        raise ValueError(f"{len(outputs)} outputs for {len(baseline_outputs)} baseline outputs")
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    return [100.0 if out == base else 100 * scorer.score(base, out)["rougeL"].fmeasure
            for out, base in zip(outputs, baseline_outputs)]
