"""cs336-common: model and tokenizer primitives shared by the cs336 packages."""

from cs336_common.nn import *  # noqa: F403  (the model API, re-exported)
from cs336_common.nn import __all__ as _nn_all

__all__ = [*_nn_all]
