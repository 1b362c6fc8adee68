"""ROUGE with rouge-score: F1 x 100, Porter stemming, ROUGE-Lsum over newline-separated sentences."""
from __future__ import annotations

ROUGE_TYPES = ("rouge1", "rouge2", "rougeLsum")


def rouge(predictions: list[str], references: list[str]) -> dict[str, float]:
    """Mean ROUGE-1/2/Lsum F1 (0-100). Sentences must be separated by newlines for Lsum."""
    from rouge_score import rouge_scorer

    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions for {len(references)} references")
    if not predictions:
        raise ValueError("no predictions to score")
    scorer = rouge_scorer.RougeScorer(list(ROUGE_TYPES), use_stemmer=True)
    totals = dict.fromkeys(ROUGE_TYPES, 0.0)
    for pred, ref in zip(predictions, references):
        scores = scorer.score(ref, pred)
        for key in ROUGE_TYPES:
            totals[key] += scores[key].fmeasure
    return {key: 100 * total / len(predictions) for key, total in totals.items()}
