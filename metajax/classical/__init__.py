"""Classical baselines for the RL^2 benchmarks, pure JAX and vmappable over tasks."""
