"""RL^2 on random tabular MDPs next to PSRL (the RL^2 paper's Table 2 shape).

  python -m experiments.rl2_mdps                             # n in {10,25,50,75,100}, both cores
  python -m experiments.rl2_mdps --episodes 10,25 --cores gru --iterations 1000
  python -m experiments.rl2_mdps --episodes 10 --cores transformer --transition-input true
  python -m experiments.rl2_mdps --smoke --out-dir /tmp/rl2m

Rows: n, the episodes (of H = 10 steps) per trial. Columns: random, PSRL (posterior sampling with
the family's own prior), RL^2-GRU, RL^2-transformer and the known-MDP optimum (value iteration), each
the total reward of a trial, mean +- s.e. over the same fixed test tasks (1,000 by default). Each
RL^2 cell trains for ``--iterations`` PPO iterations. Trial returns reach ~200, so the value head
learns returns scaled by ``--reward-scale 0.1`` (the default here): unscaled, the value loss's
gradient swamps the policy's through the shared core under gradient clipping. ``--transition-input
true`` (not in the paper) adds the previous state to each input: the transformer then beats PSRL.
Writes ``results.{json,csv}``, ``table.md`` and ``curves.json`` under ``--out-dir``.
"""
from __future__ import annotations

import dataclasses

import jax

import metajax
from experiments.rl2_common import TableConfig, add_smoke_flag, fill_row, parse_list, write_outputs
from metajax.classical import mdps
from metajax.config import Config, option, parse_configs
from metajax.learners.rl2 import RL2Config

TRIAL_EPISODES = (10, 25, 50, 75, 100)
COLUMNS = ["random", "psrl", "rl2_gru", "rl2_transformer", "oracle"]


@dataclasses.dataclass(frozen=True)
class MDPsConfig(Config):
    episodes: str = option("10,25,50,75,100", help=f"comma-separated subset of {TRIAL_EPISODES}")
    out_dir: str = option("runs/rl2_mdps", help="where results go")

    def __post_init__(self):
        super().__post_init__()
        parse_list(self.episodes, "MDPsConfig.episodes", TRIAL_EPISODES)


def run(config: MDPsConfig, table: TableConfig, rl2: RL2Config, smoke: bool = False) -> list[dict]:
    if smoke:
        config = dataclasses.replace(config, episodes="10")
        table = dataclasses.replace(table, iterations=10, test_tasks=100, chunk_size=5)
        rl2 = dataclasses.replace(rl2, trials_per_iteration=16, hidden_size=32)
    env, family = metajax.make("tabular-mdp-v1")
    tasks = family.fixed_tasks("test", table.test_tasks)
    rows, curves = [], {}
    for n in parse_list(config.episodes, "episodes", TRIAL_EPISODES):
        baselines = lambda: mdps.trial_returns(env, tasks, jax.random.key(table.eval_seed), n)  # noqa: E731
        rows.append(fill_row({"n": n}, baselines, env, family, n, rl2, table, curves, f"n={n}", "psrl"))
    text = write_outputs(config.out_dir, rows, "n", COLUMNS, curves,
                         {"rl2_config": rl2, "table_config": table})
    print(text)
    return rows


def main(argv=None):
    (config, table, rl2), args = parse_configs([MDPsConfig(), TableConfig(), RL2Config(reward_scale=0.1)], argv,
                                               description=__doc__, extra=add_smoke_flag)
    run(config, table, rl2, args.smoke)


if __name__ == "__main__":
    main()
