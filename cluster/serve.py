"""The Ray Serve application of `infersweep serve`: a gateway and the summarizer's replicas.

    HTTP (Ray Serve proxy) -> Gateway (1 replica, FastAPI: /invocations /health /ping /metrics)
                           -> SummarizerReplica (N replicas or autoscaled; @serve.batch)

The gateway parses MLflow's wire format, bounds the requests in flight (503 + Retry-After beyond
`max_queue`), splits large requests into batch-sized pieces and keeps the Prometheus metrics: one
place to scrape whatever the number of replicas. Each replica is pinned to its trial's CPU/GPU
share (ray_actor_options; an engine thread pinned to cores of its own, with as many engine threads
as whole CPUs: serving/engine_thread.py), loads the variant, warms up at its batch size, and
answers batches of documents from many requests with one engine call (serving/batching.py
isolates a failing request). The ray-free parts live in serving/.
"""
import asyncio
import json
import logging
import threading
import time
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import Response
from ray import serve
from ray.serve.config import BackpressureConfig
from ray.serve.exceptions import BackPressureError

from infersweep.serving.admission import Admission, Overloaded
from infersweep.serving.batching import chunks, run_batch
from infersweep.serving.config import ServeConfig
from infersweep.serving.engine_thread import EngineThread
from infersweep.serving.metrics import ServingMetrics
from infersweep.serving.wire import JSON_TYPE, Limits, RequestError, body_too_large, error_body, \
    parse_documents, predictions_body

__all__ = ["APP_NAME", "SummarizerReplica", "Gateway", "build_app"]

APP_NAME = "infersweep"
WARMUP_DOCUMENT = ("The city council approved a new budget on Tuesday. It adds two bus lines and a night "
                   "service. Officials said the plan starts in May. Residents asked for more stops.")
READY_POLL_S = 0.05

api = FastAPI(title="infersweep serve", docs_url=None, redoc_url=None, openapi_url=None)


@serve.deployment(name="summarizer")
class SummarizerReplica:
    """One copy of the model. `source`: a local variant folder, or a models:/ / runs:/ URI that the
    replica downloads itself (it may run on another node)."""

    def __init__(self, source: str, tracking_uri: str | None, config: dict):
        self.config = ServeConfig(**config)
        self._batch.set_max_batch_size(self.config.max_batch_size)
        self._batch.set_batch_wait_timeout_s(self.config.batch_wait_ms / 1000)
        self.summarizer = None
        self.error: str | None = None
        self._done = threading.Event()
        # engine threads: the replica's whole CPUs; a GPU replica keeps its trial's own setting
        self.threads = None if self.config.gpus_per_replica else self.config.threads_per_replica
        self.engine_thread = EngineThread(self.threads or 1)
        # loading and warming take seconds: in the background, so /health can say "not yet"
        self.engine_thread.submit(self._load, source, tracking_uri)

    def _load(self, source: str, tracking_uri: str | None) -> None:
        try:
            from infersweep.quiet import quiet_libraries
            from infersweep.trials.package import Summarizer

            quiet_libraries()
            variant = Path(source)
            if not variant.is_dir():
                from infersweep.tracking.registry import download_variant

                variant = download_variant(source, tracking_uri)
            summarizer = Summarizer(variant, batch_size=self.config.max_batch_size, cpus=self.threads)
            summarizer.summarize([WARMUP_DOCUMENT] * self.config.max_batch_size)  # at the served batch size
            self.summarizer = summarizer
        except Exception as exc:
            self.error = f"loading {source} failed: {' '.join(str(exc).split()) or type(exc).__name__}"
        finally:
            self._done.set()

    def ready(self) -> dict:
        return {"ready": self.summarizer is not None, "error": self.error, "cores": self.engine_thread.cores}

    def check_health(self) -> None:
        if self.error:  # Serve replaces a replica whose health check raises
            raise RuntimeError(self.error)

    def _count_tokens(self, document: str) -> int:
        return len(self.summarizer.adapter.tokenizer(document, add_special_tokens=False)["input_ids"])

    async def summarize(self, documents: list[str]) -> dict:
        while not self._done.is_set():  # a replica that is still warming up holds its requests
            await asyncio.sleep(READY_POLL_S)
        if self.error:
            return {"error": self.error, "status": 503, "reason": "not_loaded"}
        return await self._batch(documents)

    @serve.batch(max_batch_size=8, batch_wait_timeout_s=0.01, batch_size_fn=lambda items: sum(map(len, items)))
    async def _batch(self, items: list[list[str]]) -> list[dict]:
        outcome = await self.engine_thread.run(run_batch, items, self.summarizer.summarize, self._count_tokens,
                                               self.config.max_document_tokens)
        answers = []
        for i, result in enumerate(outcome.results):
            answer = {"summaries": result.summaries, "error": result.error, "status": result.status,
                      "reason": result.reason}
            if i == 0:  # the batch's numbers travel once, with its first item
                answer["batch"] = {"documents": outcome.documents, "engine_calls": outcome.engine_calls}
            answers.append(answer)
        return answers


@serve.deployment(name="gateway", num_replicas=1, ray_actor_options={"num_cpus": 0})
@serve.ingress(api)
class Gateway:
    def __init__(self, model, config: dict):
        self.model = model
        self.config = ServeConfig(**config)
        self.limits = Limits(max_body_bytes=self.config.max_body_bytes, max_documents=self.config.max_documents)
        self.metrics = ServingMetrics()
        self.admission = Admission(self.config.max_queue, self.config.retry_after_s,
                                   on_change=self.metrics.queue_depth.set)
        self.warm = False

    async def _state(self) -> dict:
        if self.warm:
            return {"ready": True, "error": None}
        state = await self.model.ready.remote()
        self.warm = bool(state["ready"])
        return state

    @api.get("/health")
    @api.get("/ping")
    async def health(self) -> Response:
        state = await self._state()
        if state["ready"]:
            return Response(b'{"status": "ready"}', 200, media_type=JSON_TYPE)
        status = "failed: " + state["error"] if state["error"] else "warming up"
        return Response(json.dumps({"status": status}).encode(), 503, media_type=JSON_TYPE,
                        headers={"Retry-After": str(max(1, round(self.config.retry_after_s)))})

    @api.get("/metrics")
    async def metrics_text(self) -> Response:
        body, content_type = self.metrics.render()
        return Response(body, 200, headers={"Content-Type": content_type})

    @api.post("/invocations")
    async def invocations(self, request: Request) -> Response:
        start = time.perf_counter()
        status, reason = 500, "internal"
        try:
            with self.admission.admit():
                response = await self._answer(request)
            status, reason = 200, None
            return response
        except RequestError as error:
            status, reason = error.status, error.reason
            headers = error.headers if isinstance(error, Overloaded) else {}
            return Response(error_body(error), error.status, media_type=JSON_TYPE, headers=headers)
        finally:
            self.metrics.answered(status, time.perf_counter() - start, reason)

    async def _answer(self, request: Request) -> Response:
        state = await self._state()
        if not state["ready"]:
            raise Overloaded(state["error"] or "the model is warming up; retry shortly", self.config.retry_after_s)
        body = await self._body(request)
        documents = parse_documents(body, request.headers.get("content-type"), self.limits)
        try:
            answers = await asyncio.gather(*(self.model.summarize.remote(piece)
                                             for piece in chunks(documents, self.config.max_batch_size)))
        except BackPressureError:
            raise Overloaded("the model's queue is full; retry shortly", self.config.retry_after_s) from None
        summaries = []
        for answer in answers:
            if "batch" in answer:
                self.metrics.batch(answer["batch"]["documents"], answer["batch"]["engine_calls"])
        for answer in answers:
            if answer["error"]:
                raise RequestError(answer["error"], status=answer["status"], reason=answer["reason"])
            summaries.extend(answer["summaries"])
        return Response(predictions_body(summaries), 200, media_type=JSON_TYPE)

    async def _body(self, request: Request) -> bytes:
        """The body, refused as soon as it passes the limit (never read whole into memory)."""
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > self.limits.max_body_bytes:
            raise body_too_large(self.limits)
        body = bytearray()
        async for part in request.stream():
            body += part
            if len(body) > self.limits.max_body_bytes:
                raise body_too_large(self.limits)
        return bytes(body)


def build_app(source: str, config: ServeConfig, tracking_uri: str | None = None):
    """The bound application: replicas pinned like a trial, both queues bounded."""
    backpressure = BackpressureConfig(status_code=503, retry_after_s=config.retry_after_s)
    scaling = ({"autoscaling_config": {"min_replicas": config.min_replicas, "max_replicas": config.max_replicas,
                                       "initial_replicas": max(config.min_replicas, 1),
                                       "target_ongoing_requests": config.max_batch_size}}
               if config.autoscaling else {"num_replicas": config.replicas})
    model = SummarizerReplica.options(
        ray_actor_options={"num_cpus": config.cpus_per_replica, "num_gpus": config.gpus_per_replica},
        # two batches per replica in flight: one running, the next one filling
        max_ongoing_requests=2 * config.max_batch_size, max_queued_requests=config.max_queue,
        backpressure_config=backpressure, **scaling,
    ).bind(source, tracking_uri, config.model_dump())
    # the gateway admits up to max_queue itself and refuses the rest at once (counted, one JSON line);
    # Serve's own bound at the proxy is a backstop with room for a burst that waits to be routed
    backstop = 2 * config.max_queue + 64
    return Gateway.options(max_ongoing_requests=backstop, max_queued_requests=backstop,
                           backpressure_config=backpressure).bind(model, config.model_dump())


def start(source: str, config: ServeConfig, host: str, port: int, tracking_uri: str | None = None) -> None:
    """Deploy on the connected Ray cluster (cluster.connect) with HTTP on host:port; returns once
    deployed (warm-up continues: GET /health says when it is done)."""
    logging.getLogger("ray.serve").setLevel(logging.WARNING)  # "Started Serve ...", "... is ready at ..."
    serve.start(http_options={"host": host, "port": port},
                logging_config={"log_level": "WARNING", "enable_access_log": False})
    serve.run(build_app(source, config, tracking_uri), name=APP_NAME, route_prefix="/")


def stop() -> None:
    serve.shutdown()
