"""Summarise py-spy's collapsed stacks: `python -m bench.profile_summary stacks.txt [--top 30]`.

Prints, for the hottest functions, the share of samples where they are on the stack (inclusive) and
where they are the innermost frame (self).
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path


def summarise(path: Path, top: int) -> None:
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        total += count
        frames = [frame.split(" (")[0] + " " + frame.split("/")[-1].rstrip(")") for frame in stack.split(";")]
        for frame in set(frames):
            inclusive[frame] += count
        own[frames[-1]] += count
    print(f"{total} samples")
    print("inclusive:")
    for frame, count in inclusive.most_common(top):
        print(f"  {count / total:6.1%}  {frame}")
    print("self:")
    for frame, count in own.most_common(top):
        print(f"  {count / total:6.1%}  {frame}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.profile_summary")
    parser.add_argument("stacks", type=Path)
    parser.add_argument("--top", type=int, default=30)
    arguments = parser.parse_args()
    summarise(arguments.stacks, arguments.top)
