"""The paper's tables (and `repro tune`) as Optuna studies whose trials are tracked MLflow runs.

spec.py reads a table's TOML file; table.py turns it into cells; runner.py runs the cells of any
study with resume, retry and several workers; locks.py holds the workers' mutual exclusion and
liveness; results.py builds the results frame; tune.py is the cross-validated choice of r and lambda3.
"""
