"""Meta-learners: one algorithm per file, each a factory returning a MetaLearner."""
from metajax.learners.maml import MAMLConfig, make_maml
from metajax.learners.meta_sgd import MetaSGDConfig, make_meta_sgd
from metajax.learners.promp import ProMPConfig, make_promp
from metajax.learners.reptile import ReptileConfig, make_reptile
from metajax.learners.rl2 import RL2Config, make_rl2

__all__ = ["MAMLConfig", "make_maml", "MetaSGDConfig", "make_meta_sgd", "ProMPConfig", "make_promp",
           "ReptileConfig", "make_reptile", "RL2Config", "make_rl2"]
