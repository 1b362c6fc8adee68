"""The MLflow pyfunc wrapper around a saved variant: input text(s), output summaries."""
from __future__ import annotations

import warnings

import mlflow.pyfunc

INPUT_COLUMN = "document"
OUTPUT_COLUMN = "summary"


def _documents(model_input) -> list[str]:
    if isinstance(model_input, str):
        return [model_input]
    if hasattr(model_input, "columns"):  # a pandas DataFrame
        column = INPUT_COLUMN if INPUT_COLUMN in model_input.columns else model_input.columns[0]
        return [str(x) for x in model_input[column].tolist()]
    if isinstance(model_input, dict):
        value = model_input.get(INPUT_COLUMN, next(iter(model_input.values())))
        return [value] if isinstance(value, str) else list(value)
    return [str(x) for x in model_input]


# MLflow warns when a PythonModel subclass is created whose `predict` has no type hints; this one
# takes documents in any shape (str, list, dict, DataFrame) on purpose, and the logged signature
# describes them. MLflow resets the warning filters around that check, so the display is muted.
with warnings.catch_warnings():
    warnings.showwarning = lambda *args, **kwargs: None

    class SummarizerModel(mlflow.pyfunc.PythonModel):
        def load_context(self, context):
            from trials.package import Summarizer

            self.summarizer = Summarizer(context.artifacts["variant"])

        def predict(self, context, model_input, params=None):
            import pandas as pd

            summaries = self.summarizer.summarize(_documents(model_input))
            return pd.DataFrame({OUTPUT_COLUMN: summaries})
