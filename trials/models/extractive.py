"""Extractive summarizer: embed sentences with an encoder, score, pick top-k in document order.

Score = z-scored forward centrality (how strongly later sentences echo this one, as in
PacSum) + a lead-position prior, with MMR redundancy control. The z-scoring makes the choice
depend on the encoder: a random or badly quantized encoder reorders the sentences, which
shows in ROUGE.

Summary length (TrialSpec.summary_length): N sentences, a budget of N words (sentences are added
until the summary reaches it), or `auto`: the median sentence count of the references outside the
evaluation slice (`auto_sentences`; trials.runner.with_summary_length), resolved by the trial
engine before the adapter is built.
A dialogue ("Name: text" lines) is summarized turn by turn: each turn is one unit, kept whole
with its speaker.
"""
from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

import numpy as np

from infersweep.trials.models import resolve_model
from infersweep.trials.models.sentences import sentence_lines, split_sentences
from infersweep.trials.pruning import attention_shape, load_encoder
from infersweep.trials.runtimes.base import PreparedModel, QualityProbe

# Chosen on CNN/DailyMail validation examples 0-249 (bench/trials.py reports all 500).
CENTRALITY_WEIGHT = 1.0
POSITION_WEIGHT = 2.0
POSITION_DECAY = 4.0  # sentences; prior = exp(-index / decay)
REDUNDANCY_WEIGHT = 1.5
MIN_WORDS, MAX_WORDS = 6, 70
AUTO_SENTENCES = (1, 10)  # the range `auto` keeps to
DEFAULT_SENTENCES = 3  # `auto` with no references to read


def auto_sentences(references: list[str]) -> int:
    """The median sentence count of `references` (half rounds up), within AUTO_SENTENCES."""
    counts = [max(len(sentence_lines(ref)), 1) for ref in references]
    if not counts:
        return DEFAULT_SENTENCES
    low, high = AUTO_SENTENCES
    return min(max(math.floor(statistics.median(counts) + 0.5), low), high)


@dataclass
class SentenceChunk:
    rows: list[int]  # positions in the batch's flat sentence list
    inputs: dict


@dataclass
class ExtractiveBatch:
    sentences: list[list[str]]  # per document
    chunks: list[SentenceChunk]

    @property
    def size(self) -> int:
        return len(self.sentences)

    def token_counts(self) -> tuple[int, int]:
        """(real tokens, tokens the forwards compute: rows x padded length) over the chunks."""
        real = sum(int(c.inputs["attention_mask"].sum()) for c in self.chunks)
        return real, sum(c.inputs["attention_mask"].numel() for c in self.chunks)


#: what one more forward costs, in padded tokens' worth of compute (the call, and the smaller
#: matrices' lower efficiency); measured on MiniLM, 2 threads: see docs/decisions.md, "Less padding"
FORWARD_COST_TOKENS = 64


def plan_chunks(lengths: list[int], max_rows: int, bucket: bool = True) -> list[list[int]]:
    """Rows (indices into `lengths`, each a sentence's token count) grouped into forwards of at most
    `max_rows`, sentences of similar length together.

    With `bucket`, the length-sorted sentences are cut where a cut saves more padding than a
    forward costs (FORWARD_COST_TOKENS): the cuts minimizing rows x longest length per forward +
    the forwards' cost, found exactly (dynamic programming over the sorted order). Without it, the
    sorted order is cut every `max_rows` sentences.
    """
    order = sorted(range(len(lengths)), key=lengths.__getitem__)
    if not bucket:
        return [order[i:i + max_rows] for i in range(0, len(order), max_rows)]
    sorted_lengths = [lengths[i] for i in order]
    # best[j]: least cost of the first j sorted sentences; cut[j]: where its last forward starts
    best, cut = [0.0] + [math.inf] * len(order), [0] * (len(order) + 1)
    for j in range(1, len(order) + 1):
        longest = sorted_lengths[j - 1]
        for i in range(max(0, j - max_rows), j):
            cost = best[i] + (j - i) * longest + FORWARD_COST_TOKENS
            if cost < best[j]:
                best[j], cut[j] = cost, i
    chunks, j = [], len(order)
    while j > 0:
        chunks.append(order[cut[j]:j])
        j = cut[j]
    return chunks[::-1]


def _embedding_head_class():
    import torch

    class EmbeddingHead(torch.nn.Module):
        """encoder -> mean pooling over real tokens -> L2 normalization."""

        def __init__(self, encoder):
            super().__init__()
            self.encoder = encoder

        def forward(self, input_ids, attention_mask):
            hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)
            return torch.nn.functional.normalize(pooled.float(), dim=-1)

    return EmbeddingHead


class ExtractiveSummarizer:
    task = "extractive"

    def __init__(self, spec):
        from transformers import AutoTokenizer

        from infersweep.trials.spec import summary_length_parts

        if spec.summary_length == "auto":  # built outside a trial: read it as the trial would
            from infersweep.trials.runner import with_summary_length

            spec = with_summary_length(spec)[0]
        self.spec = spec
        self.settings = spec.extractive
        unit, count = summary_length_parts(spec.summary_length)
        self.num_sentences, self.max_words = (None, count) if unit == "words" else (count, None)
        path = resolve_model(spec.model)
        self.tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=spec.trust_remote_code)
        encoder = load_encoder(path, trust_remote_code=spec.trust_remote_code).float().eval()  # pruned or not
        self.config = encoder.config
        self.module = _embedding_head_class()(encoder).eval()

    def prepared_model(self, calibration_documents: list[str] = (),
                       calibration_references: list[str] = ()) -> PreparedModel:
        example = self._tokenize(["An example sentence for export.", "Another, longer example sentence."])
        calibration = [chunk.inputs for doc in calibration_documents
                       for chunk in self.batches([doc], 1)[0].chunks]
        # a structurally pruned encoder has fewer heads than its config says (ORT's fusion needs them)
        num_heads, attention_hidden = attention_shape(self.module.encoder.config)
        return PreparedModel(
            module=self.module,
            example_inputs=example,
            input_names=("input_ids", "attention_mask"),
            output_names=("embeddings",),
            dynamic_axes={"input_ids": {0: "batch", 1: "sequence"},
                          "attention_mask": {0: "batch", 1: "sequence"},
                          "embeddings": {0: "batch"}},
            calibration_inputs=calibration,
            model_type=getattr(self.config, "model_type", "bert"),
            num_heads=num_heads,
            hidden_size=attention_hidden,
            quality_probe=self._quality_probe(list(calibration_documents), list(calibration_references)),
        )

    def _quality_probe(self, documents: list[str], references: list[str]) -> QualityProbe | None:
        """ROUGE-Lsum of this summarizer's picks on the calibration slice, for any forward."""
        if not documents or len(references) != len(documents):
            return None
        import hashlib

        from infersweep.trials.quality import rouge_per_document

        batches = [self._batch([doc]) for doc in documents]

        def score(forward, indices) -> list[float]:
            indices = list(indices)
            summaries = [self.summarize_batch(batches[i], forward)[0] for i in indices]
            return rouge_per_document(summaries, [references[i] for i in indices])["rougeLsum"]

        digest = hashlib.blake2b(digest_size=12)
        for text in (*documents, *references, f"{self.num_sentences}/{self.max_words}"):
            digest.update(text.encode() + b"\0")
        return QualityProbe(len(documents), score, digest.hexdigest())

    def _tokenize(self, sentences: list[str]) -> dict:
        return dict(self.tokenizer(sentences, padding=True, truncation=True,
                                   max_length=self.settings.max_sentence_tokens, return_tensors="pt",
                                   return_token_type_ids=False))

    def batches(self, documents: list[str], batch_size: int) -> list[ExtractiveBatch]:
        return [self._batch(documents[i:i + batch_size]) for i in range(0, len(documents), batch_size)]

    def _batch(self, documents: list[str]) -> ExtractiveBatch:
        per_doc = [split_sentences(doc) or [doc] for doc in documents]
        flat = [s for sents in per_doc for s in sents]
        lengths = [len(ids) for ids in self.tokenizer(flat, truncation=True,
                                                      max_length=self.settings.max_sentence_tokens)["input_ids"]]
        plan = plan_chunks(lengths, self.settings.micro_batch_sentences, self.settings.padding_buckets)
        chunks = [SentenceChunk(rows, self._tokenize([flat[r] for r in rows])) for rows in plan]
        return ExtractiveBatch(per_doc, chunks)

    def embed_batch(self, batch: ExtractiveBatch, engine) -> np.ndarray:
        total = sum(len(s) for s in batch.sentences)
        embeddings = None
        for chunk in batch.chunks:
            out = np.asarray(_to_numpy(engine(**chunk.inputs)), dtype=np.float32)
            if embeddings is None:
                embeddings = np.zeros((total, out.shape[1]), dtype=np.float32)
            embeddings[chunk.rows] = out
        return embeddings

    def summarize_batch(self, batch: ExtractiveBatch, engine) -> list[str]:
        embeddings = self.embed_batch(batch, engine)
        summaries, offset = [], 0
        for sentences in batch.sentences:
            doc_emb = embeddings[offset:offset + len(sentences)]
            offset += len(sentences)
            picked = select_sentences(sentences, doc_emb, self.num_sentences, words=self.max_words)
            summaries.append("\n".join(sentences[i] for i in picked))
        return summaries


def _to_numpy(x):
    if hasattr(x, "detach"):
        return x.detach().float().cpu().numpy()
    return x


def select_sentences(sentences: list[str], embeddings: np.ndarray, k: int | None = None, *,
                     words: int | None = None) -> list[int]:
    """Indices of the chosen sentences, in document order: k of them, or (with `words`) as many
    as it takes to reach that many words."""
    if (k is None) == (words is None):
        raise ValueError("give exactly one of a sentence count k and a word budget `words`")
    count = len(sentences)
    lengths = np.array([len(s.split()) for s in sentences])
    if (words is None and count <= k) or (words is not None and lengths.sum() <= words):
        return list(range(count))
    norms = np.linalg.norm(embeddings, axis=1, keepdims=True)
    unit = embeddings / np.maximum(norms, 1e-8)
    pairwise = unit @ unit.T
    z = _zscore(forward_centrality(pairwise))
    position = np.exp(-np.arange(count) / POSITION_DECAY)
    score = CENTRALITY_WEIGHT * z + POSITION_WEIGHT * position
    eligible = (lengths >= MIN_WORDS) & (lengths <= MAX_WORDS)
    if (eligible.sum() >= k) if words is None else (lengths[eligible].sum() >= words):
        score = np.where(eligible, score, -np.inf)

    def enough(chosen: list[int]) -> bool:
        return len(chosen) >= k if words is None else lengths[chosen].sum() >= words

    chosen: list[int] = []
    while not enough(chosen):
        redundancy = pairwise[:, chosen].max(1) if chosen else np.zeros(count)
        mmr = score - REDUNDANCY_WEIGHT * redundancy
        mmr[chosen] = -np.inf
        chosen.append(int(np.argmax(mmr)))
    return sorted(chosen)


def forward_centrality(pairwise: np.ndarray) -> np.ndarray:
    """Sum of above-average similarities to *later* sentences (news states the point first)."""
    count = len(pairwise)
    threshold = pairwise[np.triu_indices(count, 1)].mean()
    edges = np.triu(np.maximum(pairwise - threshold, 0.0), 1)
    return edges.sum(1)


def _zscore(values: np.ndarray) -> np.ndarray:
    return (values - values.mean()) / (values.std() + 1e-6)


def lead_summary(document: str, k: int = 3) -> str:
    """Lead-k with the same splitter (the classic baseline)."""
    return "\n".join(split_sentences(document)[:k])
