"""Causal summarizer: a decoder-only LLM (Llama, SmolLM2, Qwen, ...) prompted to summarize.

The prompt is the tokenizer's chat template (system + user message, generation prompt added) when
the tokenizer has one, else a plain template. Batches are LEFT-padded (every prompt ends where the
new tokens begin); articles longer than the context budget are cut (`CausalSettings.max_input_tokens`,
capped by `max_position_embeddings - max_new_tokens`) and the report says how many were. Decoding
is greedy with the KV cache; the output is only the new tokens, cleaned and split into sentences
(one per line, for ROUGE-Lsum). A streamer clocks every decode step: time to first token, time
per output token and output tokens/s (trials.measure.TokenTimings).
"""
from __future__ import annotations

import re
import time
from dataclasses import dataclass, field

from infersweep.trials.measure import TokenTimings
from infersweep.trials.models import resolve_model
from infersweep.trials.models.sentences import split_sentences
from infersweep.trials.runtimes.base import GeneratingEngine, PreparedModel

__all__ = ["CausalBatch", "CausalSummarizer", "PLAIN_TEMPLATE", "clean_output", "prompt_budget"]

#: the prompt of a tokenizer without a chat template
PLAIN_TEMPLATE = "{system}\n\n{user}\n\nArticle:\n{document}\n\nSummary:"
#: what a model may put before its summary ("Summary:", "Here is a summary of the article:")
_PREAMBLE = re.compile(r"^\s*(?:(?:here is|here's)[^\n:]{0,60}:|summary\s*:)\s*", re.IGNORECASE)
_BULLET = re.compile(r"^\s*(?:[-*•]|\d+[.)])\s+", re.MULTILINE)


def clean_output(text: str) -> str:
    """A generated summary as sentences on lines: preamble, list markers and blank lines removed."""
    text = _BULLET.sub("", _PREAMBLE.sub("", text.strip()))
    text = " ".join(text.split())
    return "\n".join(split_sentences(text)) or text


def _positions(config) -> int:
    return getattr(config, "max_position_embeddings", None) or 10**9


def prompt_budget(config, settings) -> int:
    """Tokens a prompt may take: `settings.max_input_tokens`, capped by the model's positions minus
    `settings.max_new_tokens`."""
    return min(settings.max_input_tokens, _positions(config) - settings.max_new_tokens)


@dataclass
class CausalBatch:
    inputs: dict
    #: how many of this batch's documents were cut to fit the context budget
    truncated: int = 0

    @property
    def size(self) -> int:
        return int(self.inputs["input_ids"].shape[0])


@dataclass
class _TokenClock:
    """The streamer's clock: perf_counter at every put (the prompt first, then each decode step)."""

    puts: list[float] = field(default_factory=list)


def _streamer(clock: _TokenClock):
    from transformers.generation.streamers import BaseStreamer

    class TokenClockStreamer(BaseStreamer):
        def put(self, value) -> None:
            clock.puts.append(time.perf_counter())

        def end(self) -> None:
            pass

    return TokenClockStreamer()


class CausalSummarizer:
    task = "causal"

    def __init__(self, spec):
        from transformers import AutoTokenizer

        from infersweep.trials.pruning import load_causal_lm

        self.spec = spec
        self.settings = spec.causal
        path = resolve_model(spec.model)
        self.tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=spec.trust_remote_code)
        self.tokenizer.padding_side = "left"  # prompts end where generation starts
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token or self.tokenizer.unk_token
        # structurally pruned or not (a pruned variant records its layer shapes in its config)
        self.module = load_causal_lm(path, trust_remote_code=spec.trust_remote_code).float().eval()
        self.config = self.module.config
        self.max_input_tokens = prompt_budget(self.config, self.settings)
        if self.max_input_tokens < 16:
            raise ValueError(f"causal.max_new_tokens {self.settings.max_new_tokens} leaves "
                             f"{self.max_input_tokens} of the model's {_positions(self.config)} positions "
                             "for the prompt")
        self.chat = bool(getattr(self.tokenizer, "chat_template", None))
        self.eos_ids = self._eos_ids()
        self.token_timings = TokenTimings()
        self._truncated = (0, 0)  # (cut, of how many) in the last batches() call

    def _eos_ids(self) -> set[int]:
        ids = getattr(getattr(self.module, "generation_config", None), "eos_token_id", None)
        if ids is None:
            ids = self.config.eos_token_id
        if ids is None:
            ids = self.tokenizer.eos_token_id
        return set(ids if isinstance(ids, (list, tuple)) else [] if ids is None else [ids])

    # -- prompts ------------------------------------------------------------------------------
    def prompt(self, document: str) -> str:
        s = self.settings
        if self.chat:
            messages = [{"role": "system", "content": s.system_prompt},
                        {"role": "user", "content": f"{s.user_prompt}\n\n{document}"}]
            return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        # the BOS token where the tokenizer has one, and nothing else: tokenizers that wrap a text in
        # [CLS] ... [SEP] or end it with EOS would end the prompt with an end of sequence
        return (self.tokenizer.bos_token or "") + PLAIN_TEMPLATE.format(
            system=s.system_prompt, user=s.user_prompt, document=document)

    def _prompt_ids(self, text: str) -> list[int]:
        # a chat template writes its own special tokens, and the plain prompt its BOS
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def fitted_prompt(self, document: str) -> tuple[str, bool]:
        """The prompt for `document`, the document cut so the prompt fits max_input_tokens; and
        whether it was cut."""
        text = self.prompt(document)
        excess = len(self._prompt_ids(text)) - self.max_input_tokens
        if excess <= 0:
            return text, False
        doc_ids = self.tokenizer(document, add_special_tokens=False)["input_ids"]
        keep = len(doc_ids) - excess
        for _ in range(4):  # re-tokenizing a cut text can differ by a token or two
            keep = max(keep, 0)
            cut = self.tokenizer.decode(doc_ids[:keep], skip_special_tokens=True)
            text = self.prompt(cut)
            over = len(self._prompt_ids(text)) - self.max_input_tokens
            if over <= 0:
                return text, True
            keep -= over
        raise ValueError(f"the prompt template alone is longer than causal.max_input_tokens "
                         f"({self.max_input_tokens} tokens)")

    def _tokenize(self, documents: list[str]) -> CausalBatch:
        prompts, cut = zip(*(self.fitted_prompt(d) for d in documents))
        inputs = self.tokenizer(list(prompts), padding=True, add_special_tokens=False,
                                return_tensors="pt", return_token_type_ids=False)
        return CausalBatch(dict(inputs), truncated=sum(cut))

    # -- the TaskAdapter protocol -----------------------------------------------------------------
    def prepared_model(self, calibration_documents=(), calibration_references=()) -> PreparedModel:
        return PreparedModel(
            module=self.module,
            example_inputs=self._tokenize(["An example document for export."]).inputs,
            input_names=("input_ids", "attention_mask"),
            output_names=("logits",),
            dynamic_axes={},
            calibration_inputs=[self._tokenize([d]).inputs for d in calibration_documents],
            model_type=self.config.model_type,
        )

    def batches(self, documents: list[str], batch_size: int) -> list[CausalBatch]:
        out = [self._tokenize(documents[i:i + batch_size]) for i in range(0, len(documents), batch_size)]
        self._truncated = (sum(b.truncated for b in out), len(documents))
        return out

    def input_notes(self) -> list[str]:
        cut, total = self._truncated
        if not cut:
            return []
        return [f"causal: {cut} of {total} documents were cut to fit the prompt budget of "
                f"{self.max_input_tokens} tokens (causal.max_input_tokens {self.settings.max_input_tokens}, "
                f"the model's positions minus max_new_tokens {self.settings.max_new_tokens})"]

    def summarize_batch(self, batch: CausalBatch, engine: GeneratingEngine) -> list[str]:
        clock = _TokenClock()
        start = time.perf_counter()
        output_ids = engine.generate(
            **batch.inputs, max_new_tokens=self.settings.max_new_tokens, do_sample=False, num_beams=1,
            use_cache=True, pad_token_id=self.tokenizer.pad_token_id, streamer=_streamer(clock),
            temperature=None, top_p=None, top_k=None,  # greedy: a model's sampling defaults do not apply
        )
        end = time.perf_counter()
        new = output_ids[:, batch.inputs["input_ids"].shape[1]:].cpu()
        rows = [self._until_eos(row.tolist()) for row in new]
        self.token_timings.add(start, clock.puts, end, sum(len(r) for r in rows))
        texts = self.tokenizer.batch_decode(rows, skip_special_tokens=True)
        return [clean_output(t) for t in texts]

    def _until_eos(self, ids: list[int]) -> list[int]:
        """A row's new tokens up to and including its first end-of-sequence token."""
        for i, token in enumerate(ids):
            if token in self.eos_ids:
                return ids[:i + 1]
        return ids
