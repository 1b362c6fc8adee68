"""MLflow: the only package that imports mlflow. Experiment per sweep, a parent run per sweep,
one nested run per trial (idempotent by trial id), Pareto tags, registry promotion."""
