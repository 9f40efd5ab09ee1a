"""`hydra/sweeper=optuna`: an Optuna search as a Hydra sweeper, on modern optuna (docs/tracking.md).

`hydra_plugins` is a namespace package shared with other Hydra plugins: it has no __init__.py.
"""
