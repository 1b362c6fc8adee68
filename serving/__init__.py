"""Serving a summarizer over HTTP, the parts that need neither Ray nor MLflow: MLflow's wire format,
per-request error isolation inside a batch, a bounded queue, Prometheus metrics. The Ray Serve
application that uses them is cluster/serve.py."""
