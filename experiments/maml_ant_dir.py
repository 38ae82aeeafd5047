"""MAML (or `--learner promp`) on ``ant-dir-v1``; see experiments/locomotion.py for the flags."""
from experiments.locomotion import main

if __name__ == "__main__":
    main(family="ant-dir-v1")
