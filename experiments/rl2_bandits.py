"""RL^2 on Bernoulli bandits next to the classical algorithms (the RL^2 paper's Table 1 shape).

  python -m experiments.rl2_bandits                          # k in {5,10,50} x n in {10,100,500}, both cores
  python -m experiments.rl2_bandits --arms 5,10 --pulls 10 --cores gru --iterations 1500
  python -m experiments.rl2_bandits --smoke --out-dir /tmp/rl2b

Rows: (k, n). Columns: random, epsilon-greedy, UCB1, Thompson sampling, RL^2-GRU, RL^2-transformer,
best-arm oracle, each the total reward of a trial of n pulls, mean +- s.e. over the same fixed test
tasks (1,000 by default; one trial each). The baselines and RL^2 play the same env. Each RL^2 cell
trains for ``--iterations`` PPO iterations (a trial of n pulls is n env steps).
Writes ``results.{json,csv}``, ``table.md`` and ``curves.json`` under ``--out-dir``.
"""
from __future__ import annotations

import dataclasses

import jax

import metajax
from experiments.rl2_common import TableConfig, add_smoke_flag, fill_row, parse_list, write_outputs
from metajax.classical import bandits
from metajax.config import Config, option, parse_configs
from metajax.envs.bandit import ARM_COUNTS
from metajax.learners.rl2 import RL2Config

TRIAL_LENGTHS = (10, 100, 500)
PAPER_RL2 = {(5, 10): 6.7, (5, 100): 78.7, (10, 100): 83.5}  # Duan et al. 2016, quoted in issue 5
COLUMNS = ["random", "epsilon_greedy", "ucb1", "thompson", "rl2_gru", "rl2_transformer", "oracle"]


@dataclasses.dataclass(frozen=True)
class BanditsConfig(Config):
    arms: str = option("5,10,50", help=f"comma-separated subset of {ARM_COUNTS}")
    pulls: str = option("10,100,500", help=f"comma-separated subset of trial lengths {TRIAL_LENGTHS}")
    out_dir: str = option("runs/rl2_bandits", help="where results go")

    def __post_init__(self):
        super().__post_init__()
        parse_list(self.arms, "BanditsConfig.arms", ARM_COUNTS)
        parse_list(self.pulls, "BanditsConfig.pulls", TRIAL_LENGTHS)


def run(config: BanditsConfig, table: TableConfig, rl2: RL2Config, smoke: bool = False) -> list[dict]:
    if smoke:
        config = dataclasses.replace(config, arms="5", pulls="10")
        table = dataclasses.replace(table, iterations=20, test_tasks=100, chunk_size=10)
        rl2 = dataclasses.replace(rl2, trials_per_iteration=32, hidden_size=32)
    rows, curves = [], {}
    for k in parse_list(config.arms, "arms", ARM_COUNTS):
        env, family = metajax.make(f"bandit-k{k}-v1")
        tasks = family.fixed_tasks("test", table.test_tasks)
        for n in parse_list(config.pulls, "pulls", TRIAL_LENGTHS):
            row = {"k": k, "n": n, "cell": f"k={k}, n={n}", "paper_rl2": PAPER_RL2.get((k, n))}
            baselines = lambda: bandits.trial_returns(env, tasks, jax.random.key(table.eval_seed), n)  # noqa: E731
            fill_row(row, baselines, env, family, n, rl2, table, curves, f"k={k},n={n}", "thompson")
            rows.append(row)
    text = write_outputs(config.out_dir, rows, "cell", COLUMNS + ["paper_rl2"], curves,
                         {"rl2_config": rl2, "table_config": table})
    print(text)
    return rows


def main(argv=None):
    (config, table, rl2), args = parse_configs([BanditsConfig(), TableConfig(), RL2Config()], argv,
                                               description=__doc__, extra=add_smoke_flag)
    run(config, table, rl2, args.smoke)


if __name__ == "__main__":
    main()
