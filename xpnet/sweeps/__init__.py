"""Hyperparameter sweeps on Optuna: the search space (``space``), studies, storage and workers
(``study``), and the ``xpnet sweep`` command line (``cli``). Only ``study`` imports Optuna,
when a sweep command runs."""
