"""MAML (or `--learner promp`) on ``halfcheetah-dir-v1``; see experiments/locomotion.py for the flags."""
from experiments.locomotion import main

if __name__ == "__main__":
    main(family="halfcheetah-dir-v1")
