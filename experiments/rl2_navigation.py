"""RL^2 on navigation: ``maze-v1`` (find a hidden goal again and again) and ``point-nav-v1``.

  python -m experiments.rl2_navigation                         # maze-v1, both cores
  python -m experiments.rl2_navigation --env point-nav-v1 --episodes 2 --cores gru
  python -m experiments.rl2_navigation --smoke --out-dir /tmp/rl2nav

Columns: the untrained RL^2 policy (random init), RL^2-GRU, RL^2-transformer and the oracle that
knows the task (maze: the known-goal optimum by value iteration on the maze's MDP form, exact in
expectation; point-nav: the goal-seeking controller). Each cell is the mean +- s.e. over the test
tasks of the return per episode of the trial (for the maze one trial is one 100-step episode with
respawns, so it is the trial's total). Writes ``results.{json,csv}``, ``table.md``, ``curves.json``.
"""
from __future__ import annotations

import dataclasses

import jax

import metajax
from experiments.rl2_common import TableConfig, add_smoke_flag, train_rl2_cell, write_outputs
from metajax.config import Config, option, parse_configs
from metajax.envs.maze import maze_as_mdp
from metajax.envs.tabular_mdp import optimal_values
from metajax.evaluation import evaluate_oracle, evaluate_trials, summarize
from metajax.learners.rl2 import RL2Config, make_rl2

COLUMNS = ["random_init", "rl2_gru", "rl2_transformer", "oracle"]


@dataclasses.dataclass(frozen=True)
class NavigationConfig(Config):
    env: str = option("maze-v1", choices=("maze-v1", "point-nav-v1"), help="task family")
    episodes: int = option(1, low=1, help="episodes per trial")
    out_dir: str = option("runs/rl2_navigation", help="where results go")


def oracle_per_episode(env_name: str, env, tasks, key) -> jax.Array:
    """The oracle's expected return per episode on each test task ``[N]``."""
    if env_name == "maze-v1":
        def exact(task):
            mdp, start = maze_as_mdp(task)
            return start @ optimal_values(mdp, env.horizon)
        return jax.jit(jax.vmap(exact))(tasks)
    return evaluate_oracle(env, tasks, key).per_task[:, 0]


def run(config: NavigationConfig, table: TableConfig, rl2: RL2Config, smoke: bool = False) -> list[dict]:
    if smoke:
        table = dataclasses.replace(table, iterations=10, test_tasks=50, chunk_size=5)
        rl2 = dataclasses.replace(rl2, trials_per_iteration=8, hidden_size=16, num_heads=2)
    rl2 = dataclasses.replace(rl2, episodes_per_trial=config.episodes)
    env, family = metajax.make(config.env)
    tasks = family.fixed_tasks("test", table.test_tasks)
    key = jax.random.key(table.eval_seed)
    untrained = make_rl2(env, family, rl2)
    per_episode = evaluate_trials(untrained, untrained.init(jax.random.key(table.seed)).params, tasks, key,
                                  config.episodes).per_task
    row = {"env": config.env, "episodes": config.episodes,
           "random_init": _cell(per_episode), "oracle": _cell(oracle_per_episode(config.env, env, tasks, key))}
    curves = {}
    for core in table.core_names():
        result = train_rl2_cell(env, family, dataclasses.replace(rl2, core=core), table)
        curves[core] = result.pop("curve")
        per_episode_means = result["per_episode"]
        row[f"rl2_{core}"] = {**result, "mean": result["mean"] / config.episodes,
                              "stderr": result["stderr"] / config.episodes}
        print(f"{config.env} {core}: per-episode returns {per_episode_means} "
              f"(oracle {row['oracle']['mean']:.2f}; {result['train_seconds']} s)", flush=True)
    text = write_outputs(config.out_dir, [row], "env", COLUMNS, curves,
                         {"rl2_config": rl2, "table_config": table})
    print(text)
    return [row]


def _cell(values) -> dict:
    """Mean +- s.e. over tasks of the per-episode return (``[N]`` or ``[N, n]`` averaged over episodes)."""
    per_task = values.mean(axis=1) if values.ndim == 2 else values
    result = summarize(per_task)
    return {"mean": float(result.mean), "stderr": float(result.stderr)}


def main(argv=None):
    (config, table, rl2), args = parse_configs([NavigationConfig(), TableConfig(iterations=1000), RL2Config()],
                                            argv, description=__doc__, extra=add_smoke_flag)
    run(config, table, rl2, args.smoke)


if __name__ == "__main__":
    main()
