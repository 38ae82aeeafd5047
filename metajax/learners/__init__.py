"""Meta-learners: one algorithm per file, each a factory returning a MetaLearner."""
from metajax.learners.maml import MAMLConfig, make_maml

__all__ = ["MAMLConfig", "make_maml"]
