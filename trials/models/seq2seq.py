"""Seq2seq summarizer: AutoModelForSeq2SeqLM (BART, T5, Pegasus, ...) with generate()."""
from __future__ import annotations

from dataclasses import dataclass

from infersweep.trials.models import resolve_model
from infersweep.trials.models.sentences import split_sentences
from infersweep.trials.runtimes.base import GeneratingEngine, PreparedModel


@dataclass
class Seq2SeqBatch:
    inputs: dict

    @property
    def size(self) -> int:
        return int(self.inputs["input_ids"].shape[0])


class Seq2SeqSummarizer:
    task = "seq2seq"

    def __init__(self, spec):
        from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

        self.spec = spec
        self.settings = spec.generation
        path = resolve_model(spec.model)
        self.tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=spec.trust_remote_code)
        self.module = AutoModelForSeq2SeqLM.from_pretrained(
            path, trust_remote_code=spec.trust_remote_code).float().eval()
        self.config = self.module.config
        self.prefix = "summarize: " if self.config.model_type in ("t5", "mt5") else ""
        positions = getattr(self.config, "max_position_embeddings", None)  # T5 has none (relative)
        self.max_input_tokens = min(self.settings.max_input_tokens, positions or 10**9)

    def prepared_model(self, calibration_documents: list[str] = (), calibration_references=()) -> PreparedModel:
        return PreparedModel(
            module=self.module,
            example_inputs=self._tokenize(["An example document for export."]),
            input_names=("input_ids", "attention_mask"),
            output_names=("logits",),
            dynamic_axes={},
            calibration_inputs=[self._tokenize([d]) for d in calibration_documents],
            model_type=self.config.model_type,
        )

    def _tokenize(self, documents: list[str]) -> dict:
        return dict(self.tokenizer([self.prefix + d for d in documents], padding=True, truncation=True,
                                   max_length=self.max_input_tokens, return_tensors="pt",
                                   return_token_type_ids=False))

    def batches(self, documents: list[str], batch_size: int) -> list[Seq2SeqBatch]:
        return [Seq2SeqBatch(self._tokenize(documents[i:i + batch_size]))
                for i in range(0, len(documents), batch_size)]

    def summarize_batch(self, batch: Seq2SeqBatch, engine: GeneratingEngine) -> list[str]:
        g = self.settings
        output_ids = engine.generate(
            **batch.inputs, num_beams=g.num_beams, max_new_tokens=g.max_new_tokens,
            min_new_tokens=g.min_new_tokens, length_penalty=g.length_penalty,
            no_repeat_ngram_size=g.no_repeat_ngram_size, do_sample=False,
        )
        texts = self.tokenizer.batch_decode(output_ids, skip_special_tokens=True)
        # ROUGE-Lsum needs one sentence per line
        return ["\n".join(split_sentences(t.strip())) or t.strip() for t in texts]
