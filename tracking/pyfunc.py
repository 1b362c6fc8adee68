"""The MLflow pyfunc model of a saved variant: documents in, one summary per document out.

Logged as "models from code" (`promote_variant` passes this file's path, MLflow runs it when the
model loads and picks up `set_model` below), so loading a registered model unpickles nothing.

Input signature: one unnamed string column, the signature MLflow's own text pipelines use. Every
shape MLflow accepts for it then reaches `predict` as a one-column DataFrame, and each becomes one
summary per document:

    model.predict(["doc 1", "doc 2"])                 # a list of documents
    model.predict("one document")                     # a single document
    model.predict({"document": ["doc 1", "doc 2"]})   # a dict: MLflow makes it ONE row holding the list
    model.predict(pd.DataFrame({"document": [...]}))  # a DataFrame: its `document` column (or its only one)
    POST /invocations {"inputs": [...]} or {"dataframe_records": [{"document": ...}, ...]}

Output: a DataFrame with one `summary` column, row i summarizing document i.
"""
from __future__ import annotations

import warnings

import mlflow.models
import mlflow.pyfunc

INPUT_COLUMN = "document"
OUTPUT_COLUMN = "summary"


def signature():
    """Input: documents (an unnamed string column). Output: a `summary` column."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, DataType, Schema

    return ModelSignature(inputs=Schema([ColSpec(DataType.string)]),
                          outputs=Schema([ColSpec(DataType.string, OUTPUT_COLUMN)]))


def documents(model_input) -> list[str]:
    """Every input shape → a flat list of documents, in order; anything that is not text is refused."""
    import numpy as np

    if isinstance(model_input, (str, bytes)):
        values = [model_input]
    elif hasattr(model_input, "columns"):  # a pandas DataFrame: the `document` column, else its only one
        columns = list(model_input.columns)
        if INPUT_COLUMN in columns:
            values = model_input[INPUT_COLUMN].tolist()
        elif len(columns) == 1:
            values = model_input[columns[0]].tolist()
        else:
            raise _bad_input(f"expected a {INPUT_COLUMN!r} column, got columns {columns}")
    elif isinstance(model_input, dict):
        if INPUT_COLUMN in model_input:
            values = model_input[INPUT_COLUMN]
        elif len(model_input) == 1:
            values = next(iter(model_input.values()))
        else:
            raise _bad_input(f"expected a {INPUT_COLUMN!r} key, got keys {sorted(model_input)}")
        values = [values] if isinstance(values, (str, bytes)) else values
    elif isinstance(model_input, (list, tuple)) or hasattr(model_input, "tolist"):  # list, Series, array
        values = model_input
    else:
        values = [model_input]
    flat: list[str] = []
    for value in (values.tolist() if hasattr(values, "tolist") else list(values)):
        # a dict of lists arrives as one row whose cell is the list (see the module docstring)
        items = value.tolist() if isinstance(value, np.ndarray) else value
        for item in items if isinstance(items, (list, tuple)) else [items]:
            if isinstance(item, bytes):
                item = item.decode("utf-8")
            if not isinstance(item, str):
                raise _bad_input(f"document {len(flat) + 1} is {type(item).__name__}, expected text")
            flat.append(item)
    return flat


def _bad_input(message: str):
    from mlflow.exceptions import MlflowException

    return MlflowException.invalid_parameter_value(f"summarizer input: {message}")


# MLflow warns when a PythonModel subclass is created whose `predict` has no type hints; this one
# takes documents in any shape (str, list, dict, DataFrame) on purpose, and the logged signature
# describes them. MLflow resets the warning filters around that check, so the display is muted.
with warnings.catch_warnings():
    warnings.showwarning = lambda *args, **kwargs: None

    class SummarizerModel(mlflow.pyfunc.PythonModel):
        def load_context(self, context):
            from infersweep.trials.package import Summarizer

            self.summarizer = Summarizer(context.artifacts["variant"])

        def predict(self, context, model_input, params=None):
            import pandas as pd

            docs = documents(model_input)
            summaries = self.summarizer.summarize(docs)
            if len(summaries) != len(docs):
                raise RuntimeError(f"{len(docs)} documents gave {len(summaries)} summaries")
            return pd.DataFrame({OUTPUT_COLUMN: summaries})


if __name__ not in ("tracking.pyfunc", "infersweep.tracking.pyfunc"):
    # run by MLflow as the logged model's code (models from code): this is the model it loads
    mlflow.models.set_model(SummarizerModel())
