"""A sweep: YAML spec -> search space -> Optuna inside Ray Tune -> Pareto frontier."""
