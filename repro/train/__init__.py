"""Training one configuration: data in memory, the paper's losses, checkpoints, MLflow tracking."""
