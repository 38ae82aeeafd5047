"""Meta-learners: one algorithm per file, each a factory returning a MetaLearner."""
from metajax.learners.maml import MAMLConfig, make_maml
from metajax.learners.meta_sgd import MetaSGDConfig, make_meta_sgd
from metajax.learners.promp import ProMPConfig, make_promp
from metajax.learners.reptile import ReptileConfig, make_reptile

__all__ = ["MAMLConfig", "make_maml", "MetaSGDConfig", "make_meta_sgd", "ProMPConfig", "make_promp",
           "ReptileConfig", "make_reptile"]
