"""TrialSpec (what to run) and TrialReport (what happened); both round-trip through JSON."""
from __future__ import annotations

import hashlib
import json
import re
from typing import Annotated, Any, Literal, Optional, get_args

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from infersweep.trials.models import ADAPTERS
from infersweep.trials.precision import PRECISIONS, Precision
from infersweep.trials.pruning import MAX_PRUNE_RATIO, PRUNING_METHODS
from infersweep.trials.runtimes import RUNTIMES

DEFAULT_MODEL = "all-MiniLM-L6-v2"
DEFAULT_DATASET = "sample"


#: summary length: "auto", N sentences ("3", "3s", "3 sentences") or N words ("60w", "60 words")
_LENGTH = re.compile(r"^(?:(?P<auto>auto)|(?P<count>\d+)\s*(?P<unit>s|sentences?|w|words?)?)$")
MAX_SUMMARY_SENTENCES = 20
SUMMARY_WORDS_RANGE = (5, 2000)
DEFAULT_SUMMARY_LENGTH = "auto"
#: a trial's outcomes (trials.runner maps every ending to one)
Status = Literal["ok", "infeasible", "oom", "failed"]
STATUSES: tuple[str, ...] = get_args(Status)


def normalize_summary_length(value: Any) -> str:
    """'auto', 'N' (sentences) or 'Nw' (words), from an int or any accepted spelling."""
    valid = not isinstance(value, bool) and isinstance(value, (int, str))
    match = _LENGTH.match(str(value).strip().lower()) if valid else None
    if not match:
        raise ValueError(f"summary length {value!r}: use 'auto', a sentence count ('3') or a word "
                         f"budget ('60w')")
    if match["auto"]:
        return "auto"
    count, words = int(match["count"]), (match["unit"] or "s").startswith("w")
    low, high = SUMMARY_WORDS_RANGE if words else (1, MAX_SUMMARY_SENTENCES)
    if not low <= count <= high:
        raise ValueError(f"summary length {value!r}: {'words' if words else 'sentences'} must be "
                         f"between {low} and {high}")
    return f"{count}w" if words else str(count)


def summary_length_parts(value: str) -> tuple[Literal["auto", "sentences", "words"], int]:
    """('auto', 0), ('sentences', N) or ('words', N) for a summary length setting."""
    value = normalize_summary_length(value)
    if value == "auto":
        return "auto", 0
    return ("words", int(value[:-1])) if value.endswith("w") else ("sentences", int(value))


#: a validated summary length setting (TrialSpec.summary_length; mirrored by sweep specs)
SummaryLength = Annotated[str, BeforeValidator(normalize_summary_length)]


def _one_of(value: str, valid, what: str) -> str:
    if value not in valid:
        raise ValueError(f"unknown {what} {value!r}; valid: {', '.join(valid)}")
    return value


class GenerationSettings(BaseModel):
    """Seq2seq decoding settings (ignored by the extractive task)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    num_beams: int = Field(2, ge=1, le=16)
    max_new_tokens: int = Field(64, ge=1, le=1024)
    min_new_tokens: int = Field(0, ge=0)
    length_penalty: float = 1.0
    no_repeat_ngram_size: int = Field(3, ge=0)
    max_input_tokens: int = Field(512, ge=8)


class ExtractiveSettings(BaseModel):
    """How the extractive summarizer scores and picks sentences."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    num_sentences: int = Field(3, ge=1, le=10, description="deprecated: use TrialSpec.summary_length "
                               "(a value other than 3 is taken as summary_length when that is auto)")
    max_sentence_tokens: int = Field(128, ge=8, le=512)
    micro_batch_sentences: int = Field(64, ge=1)
    padding_buckets: bool = Field(True, description="cut the length-sorted sentences into forwards where "
                                  "the padding saved outweighs another forward (false: every "
                                  "micro_batch_sentences sentences)")


DEFAULT_SYSTEM_PROMPT = "You are a careful news editor. You write short, factual summaries."
DEFAULT_USER_PROMPT = "Summarize the following news article in 3 sentences."


class CausalSettings(BaseModel):
    """How the causal task (a decoder-only LLM) prompts and decodes: greedy, KV cache on."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    system_prompt: str = Field(DEFAULT_SYSTEM_PROMPT, description="the chat template's system message "
                               "(the first lines of the plain template)")
    user_prompt: str = Field(DEFAULT_USER_PROMPT, description="the instruction put before the article")
    max_new_tokens: int = Field(96, ge=1, le=4096)
    max_input_tokens: int = Field(1024, ge=16, description="prompt budget in tokens (capped by the model's "
                                  "max_position_embeddings minus max_new_tokens); longer articles are cut")


class TimingSettings(BaseModel):
    """When latency counts as measured: timed passes over the evaluation slice go on until the
    95% interval of the median per-document latency (one value per pass) is within
    ±rel_halfwidth_pct of it, with at least min_passes passes and min_batches full batches, or
    until max_seconds (the trial is then flagged noisy)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    min_passes: int = Field(3, ge=1, le=1000)
    min_batches: int = Field(8, ge=1, le=10_000)
    rel_halfwidth_pct: float = Field(5.0, gt=0, le=100)
    max_seconds: float = Field(20.0, gt=0)


class QuantizationSettings(BaseModel):
    """How calibrated quantization (int8_static) is bounded by quality."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    max_rouge_drop_pct: Optional[float] = Field(
        None, gt=0.0, le=100.0,
        description="int8_static with accuracy control (runtimes whose recipe has one: openvino, NNCF): layers "
                    "return to float until ROUGE-Lsum on the calibration slice drops at most this much, relative "
                    "to the float model; unset: plain post-training quantization. Other precisions ignore it")


class StructuredPruningSettings(BaseModel):
    """How `structured` pruning splits its ratio between heads and FFN neurons and ranks them."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    head_ratio: Optional[float] = Field(None, ge=0.0, le=MAX_PRUNE_RATIO,
                                        description="share of attention heads removed (default: prune_ratio)")
    ffn_ratio: Optional[float] = Field(None, ge=0.0, le=MAX_PRUNE_RATIO,
                                       description="share of FFN neurons removed (default: prune_ratio)")
    importance: Literal["activation", "weight"] = Field(
        "activation", description="activations on the calibration slice, or weight norms")


class TrialSpec(BaseModel):
    """One combination of knobs applied to one model on one evaluation slice."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str = DEFAULT_MODEL
    task: str = "extractive"
    dataset: str = DEFAULT_DATASET
    document_field: str = "document"
    summary_field: str = "summary"
    n: int = Field(50, ge=1)
    precision: Precision = Precision.FP32
    pruning: str = "none"
    prune_ratio: float = Field(0.0, ge=0.0, le=MAX_PRUNE_RATIO)
    runtime: str = "torch"
    batch_size: int = Field(1, ge=1, le=4096)
    device: Literal["cpu", "cuda"] = "cpu"
    cpus: int = Field(2, ge=1)
    warmup: int = Field(2, ge=0, description="warm-up batches before timing")
    repeats: int = Field(2, ge=1, description="timed passes over the evaluation slice")
    seed: int = 0
    trust_remote_code: bool = False
    generation: GenerationSettings = GenerationSettings()
    causal: CausalSettings = CausalSettings()
    extractive: ExtractiveSettings = ExtractiveSettings()
    structured: StructuredPruningSettings = StructuredPruningSettings()
    quantization: QuantizationSettings = QuantizationSettings()
    timing: TimingSettings = TimingSettings()
    summary_length: SummaryLength = Field(
        DEFAULT_SUMMARY_LENGTH,
        description="extractive summaries: 'auto' (the median sentence count of the references "
                    "outside the evaluation slice, 1-10), N sentences ('3') or a budget of N words ('60w')")

    @model_validator(mode="before")
    @classmethod
    def _legacy_num_sentences(cls, data: Any) -> Any:
        """extractive.num_sentences was the summary length before summary_length existed."""
        if not isinstance(data, dict) or data.get("task", "extractive") != "extractive":
            return data
        extractive = data.get("extractive")
        legacy = (extractive.get("num_sentences") if isinstance(extractive, dict)
                  else getattr(extractive, "num_sentences", None))
        if not isinstance(legacy, int) or isinstance(legacy, bool) or legacy == 3:
            return data
        try:
            given = normalize_summary_length(data.get("summary_length", DEFAULT_SUMMARY_LENGTH))
        except ValueError:
            return data  # the field validator reports it
        if given == "auto":
            return {**data, "summary_length": str(legacy)}
        if given != str(legacy):
            raise ValueError(f"summary_length {given!r} and extractive.num_sentences {legacy} disagree; "
                             "set summary_length only (num_sentences is its old name)")
        return data

    @model_validator(mode="after")
    def _length_is_extractive(self) -> "TrialSpec":
        if self.task != "extractive" and self.summary_length != DEFAULT_SUMMARY_LENGTH:
            raise ValueError(f"summary_length {self.summary_length!r} applies to the extractive task; "
                             f"for {self.task} set "
                             + ("causal.max_new_tokens" if self.task == "causal"
                                else "generation.max_new_tokens (and min_new_tokens)"))
        return self

    @field_validator("precision", mode="before")
    @classmethod
    def _precision(cls, v: Any) -> Any:
        return _one_of(v, list(PRECISIONS), "precision")

    @field_validator("task")
    @classmethod
    def _task(cls, v: str) -> str:
        return _one_of(v, list(ADAPTERS), "task")

    @field_validator("pruning")
    @classmethod
    def _pruning(cls, v: str) -> str:
        return _one_of(v, list(PRUNING_METHODS), "pruning method")

    @field_validator("runtime")
    @classmethod
    def _runtime(cls, v: str) -> str:
        return _one_of(v, list(RUNTIMES), "runtime")

    @model_validator(mode="after")
    def _pruning_needs_ratio(self) -> "TrialSpec":
        if self.pruning == "none" and self.prune_ratio > 0:
            raise ValueError(
                f"prune_ratio {self.prune_ratio} given with pruning 'none'; "
                "set pruning to 'unstructured' (or another method) or the ratio to 0"
            )
        if self.pruning != "none" and self.prune_ratio == 0:
            raise ValueError(f"pruning {self.pruning!r} needs prune_ratio > 0")
        return self

    def to_json(self) -> str:
        return self.model_dump_json()

    @classmethod
    def from_json(cls, text: str) -> "TrialSpec":
        return cls.model_validate_json(text)

    def knobs(self) -> dict[str, Any]:
        """The swept axes, flat (MLflow params, tables)."""
        return {
            "precision": self.precision.value,
            "pruning": self.pruning,
            "prune_ratio": self.prune_ratio,
            "runtime": self.runtime,
            "batch_size": self.batch_size,
            "device": self.device,
        }

    def trial_id(self) -> str:
        """Stable id: the same spec always gets the same id (dedup, idempotent logging)."""
        fields = self.model_dump(mode="json")
        # summary_length came later: left out where the spec says what older specs said, so their
        # ids (dedup, resume) are unchanged
        legacy = self.extractive.num_sentences
        implied = str(legacy) if self.task == "extractive" and legacy != 3 else DEFAULT_SUMMARY_LENGTH
        if self.summary_length == implied:
            del fields["summary_length"]
        # likewise the causal task's settings, which came later still: left out at their defaults
        if self.causal == CausalSettings():
            del fields["causal"]
        # and the quantization bound, later again
        if self.quantization == QuantizationSettings():
            del fields["quantization"]
        # and padding_buckets, later again: at its default, the ids of the specs before it
        if self.extractive.padding_buckets:
            del fields["extractive"]["padding_buckets"]
        canon = json.dumps(fields, sort_keys=True)
        return hashlib.sha1(canon.encode()).hexdigest()[:12]

    def short_name(self) -> str:
        prune = f"{self.pruning}{self.prune_ratio:g}" if self.pruning != "none" else "dense"
        return f"{self.runtime}-{self.precision}-{prune}-b{self.batch_size}"


class TrialReport(BaseModel):
    """What a trial did: status, reason, metrics (names from trials.measure), provenance."""

    # NaN stays NaN in report.json (a null would not read back as a float)
    model_config = ConfigDict(extra="forbid", ser_json_inf_nan="constants")

    spec: TrialSpec
    trial_id: str = ""
    status: Status
    reason: str = ""
    metrics: dict[str, float] = {}
    hardware: dict[str, Any] = {}
    versions: dict[str, str] = {}
    phases_s: dict[str, float] = {}
    artifact: dict[str, Any] = {}
    notes: list[str] = []
    sample_summaries: list[str] = []
    #: ROUGE type -> each evaluated document's score, in `document_ids` order (paired verdicts)
    per_document: dict[str, list[float]] = {}
    document_ids: list[str] = []
    #: generative tasks: every evaluated document's summary, in `document_ids` order (a variant's
    #: agreement with the baseline's outputs, trials.measure.agreement)
    outputs: list[str] = []
    #: raw batch times, how stable their median is, the load they were measured under
    timing: dict[str, Any] = {}
    #: the baseline's per-document scores on the documents sequential evaluation added (the
    #: baseline's own report covers only its slice); paired with `per_document` by id
    reference_per_document: dict[str, list[float]] = {}
    reference_document_ids: list[str] = []
    #: sequential evaluation: each round's documents and verdict, and how it ended
    evaluation: dict[str, Any] = {}

    @field_validator("metrics")
    @classmethod
    def _known_metrics(cls, metrics: dict[str, float]) -> dict[str, float]:
        """Only names from trials.measure.METRICS: a misspelt name would vanish from every table."""
        from infersweep.trials.measure import METRICS

        unknown = [name for name in metrics if name not in METRICS]
        if unknown:
            raise ValueError(f"unknown metric {', '.join(map(repr, unknown))}; valid: {', '.join(METRICS)}")
        return metrics

    @model_validator(mode="after")
    def _fill_id(self) -> "TrialReport":
        if not self.trial_id:
            self.trial_id = self.spec.trial_id()
        return self

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def to_json(self) -> str:
        return self.model_dump_json(indent=2)

    @classmethod
    def from_json(cls, text: str) -> "TrialReport":
        return cls.model_validate_json(text)
