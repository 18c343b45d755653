"""Adaptive search (Optuna) over an experiment's declared parameters; trials are cells."""
from petridish.search.space import SearchSpace, derive_space
from petridish.search.study import SearchResult, run_search

__all__ = ["SearchResult", "SearchSpace", "derive_space", "run_search"]
