"""MAML (or `--learner promp`) on ``halfcheetah-vel-v1``; see experiments/locomotion.py for the flags."""
from experiments.locomotion import main

if __name__ == "__main__":
    main(family="halfcheetah-vel-v1")
