"""``maze-v1``: find the goal cell of a small maze, again and again (RL^2's navigation, in miniature).

Definition (pinned by tests/test_rl2_envs.py):
  layouts: ``NUM_LAYOUTS`` fixed 9x9 mazes, a perfect maze on the 4x4 grid of odd cells carved by a
    depth-first search seeded with 0, 1, ..., NUM_LAYOUTS - 1 (numpy ``RandomState``); 31 free cells.
  task: a layout index ~ U{0..NUM_LAYOUTS-1} and a goal cell ~ uniform over its free cells; 124
    distinct tasks in all, so train and test draws share them (``finite_size``).
  start: a uniformly random free cell other than the goal.
  actions: 0 up, 1 down, 2 left, 3 right; a move into a wall stays put.
  reward: +1 on entering the goal, after which the agent respawns at a random free non-goal cell.
  obs: the 3x3 wall view around the agent (9 values, row-major) and its (row, col) / 8.
  horizon: one trial of H = 100 steps (truncated), no termination.
``maze_as_mdp`` writes a task as a tabular MDP (81 positions) so that value iteration gives the
known-goal optimum, the oracle row.
"""
from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from metajax.envs.tabular_mdp import MDPTask
from metajax.envs.tasks import TaskFamily
from metajax.types import TimeStep

SIZE = 9
NUM_LAYOUTS = 4
MOVES = np.array([[-1, 0], [1, 0], [0, -1], [0, 1]], np.int32)


def carve_layout(seed: int) -> np.ndarray:
    """A perfect maze ``[9, 9]`` (1 = wall) carved by a seeded depth-first search over odd cells."""
    rng = np.random.RandomState(seed)
    walls = np.ones((SIZE, SIZE), np.int32)
    cells = SIZE // 2  # 4 x 4 rooms at odd coordinates
    visited = np.zeros((cells, cells), bool)
    stack = [(0, 0)]
    visited[0, 0] = True
    walls[1, 1] = 0
    while stack:
        r, c = stack[-1]
        options = [(r + dr, c + dc) for dr, dc in MOVES
                   if 0 <= r + dr < cells and 0 <= c + dc < cells and not visited[r + dr, c + dc]]
        if not options:
            stack.pop()
            continue
        nr, nc = options[rng.randint(len(options))]
        visited[nr, nc] = True
        walls[2 * nr + 1, 2 * nc + 1] = 0
        walls[r + nr + 1, c + nc + 1] = 0  # the corridor between the two rooms
        stack.append((nr, nc))
    return walls


LAYOUTS = np.stack([carve_layout(seed) for seed in range(NUM_LAYOUTS)])  # [L, 9, 9]


class MazeTask(NamedTuple):
    layout: jax.Array  # [] int32
    goal: jax.Array  # [2] int32 (row, col)


class MazeState(NamedTuple):
    position: jax.Array  # [2] int32
    time: jax.Array  # [] int32


def _random_free_cell(key, walls, exclude):
    free = (walls == 0).at[exclude[0], exclude[1]].set(False).reshape(-1)
    index = jax.random.categorical(key, jnp.where(free, 0.0, -jnp.inf))
    return jnp.stack([index // SIZE, index % SIZE]).astype(jnp.int32)


@dataclasses.dataclass(frozen=True)
class Maze:
    """Grid navigation to a hidden goal in one of the fixed layouts; the task is (layout, goal)."""

    horizon: int = 100
    num_actions: int = 4
    observation_size: int = 11
    action_size: int = 1  # one integer action

    def reset(self, key, task: MazeTask):
        walls = jnp.asarray(LAYOUTS)[task.layout]
        state = MazeState(_random_free_cell(key, walls, task.goal), jnp.zeros((), jnp.int32))
        false = jnp.zeros((), bool)
        return state, TimeStep(self._observe(walls, state.position), jnp.zeros(()), false, false)

    def step(self, key, state: MazeState, action, task: MazeTask):
        walls = jnp.asarray(LAYOUTS)[task.layout]
        target = state.position + jnp.asarray(MOVES)[action]
        position = jnp.where(walls[target[0], target[1]] == 1, state.position, target)
        reached = jnp.all(position == task.goal)
        position = jnp.where(reached, _random_free_cell(key, walls, task.goal), position)
        time = state.time + 1
        timestep = TimeStep(self._observe(walls, position), reached.astype(jnp.float32),
                            jnp.zeros((), bool), time >= self.horizon)
        return MazeState(position, time), timestep

    def _observe(self, walls, position):
        view = jax.lax.dynamic_slice(walls, (position[0] - 1, position[1] - 1), (3, 3))
        return jnp.concatenate([view.reshape(-1).astype(jnp.float32), position / (SIZE - 1.0)])


def maze_as_mdp(task: MazeTask) -> tuple[MDPTask, jax.Array]:
    """The task as a tabular MDP over the 81 cells, and its start distribution ``[81]``.

    Entering the goal pays 1 and moves to the respawn distribution (uniform over free non-goal cells).
    """
    walls = jnp.asarray(LAYOUTS)[task.layout]
    rows, cols = jnp.meshgrid(jnp.arange(SIZE), jnp.arange(SIZE), indexing="ij")
    cells = jnp.stack([rows.reshape(-1), cols.reshape(-1)], -1)  # [81, 2]
    targets = jnp.clip(cells[:, None, :] + jnp.asarray(MOVES)[None], 0, SIZE - 1)  # [81, 4, 2]
    blocked = walls[targets[..., 0], targets[..., 1]] == 1
    next_cells = jnp.where(blocked[..., None], cells[:, None, :], targets)
    next_index = next_cells[..., 0] * SIZE + next_cells[..., 1]  # [81, 4]
    goal_index = task.goal[0] * SIZE + task.goal[1]
    free = (walls == 0).reshape(-1).at[goal_index].set(False)
    respawn = free / jnp.sum(free)
    reached = next_index == goal_index
    moves = jax.nn.one_hot(next_index, SIZE * SIZE)
    transitions = jnp.where(reached[..., None], respawn, moves)
    return MDPTask(reached.astype(jnp.float32), transitions), respawn


def sample_maze_task(key) -> MazeTask:
    layout_key, goal_key = jax.random.split(key)
    layout = jax.random.randint(layout_key, (), 0, NUM_LAYOUTS)
    walls = jnp.asarray(LAYOUTS)[layout]
    index = jax.random.categorical(goal_key, jnp.where(walls.reshape(-1) == 0, 0.0, -jnp.inf))
    return MazeTask(layout.astype(jnp.int32), jnp.stack([index // SIZE, index % SIZE]).astype(jnp.int32))


NUM_TASKS = int((LAYOUTS == 0).sum())  # 4 layouts x 31 free goal cells = 124 distinct tasks


def make_maze():
    return Maze(), TaskFamily("maze-v1", sample_maze_task, finite_size=NUM_TASKS)
