"""Reads the TensorBoard event files of a crunet run directory with TensorBoard's own reader and prints
every scalar series (tag, points, first and last step and value). Exits 1 if none is found.

  ~/.cache/crunet/torch-venv/bin/python scripts/tensorboard-read.py RUN_DIR

Needs the `tensorboard` package (pip install tensorboard into the PyTorch venv)."""
import sys

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

run = sys.argv[1]
acc = EventAccumulator(run, size_guidance={"scalars": 0})
acc.Reload()
tags = acc.Tags()["scalars"]
for tag in sorted(tags):
    events = acc.Scalars(tag)
    first, last = events[0], events[-1]
    print(f"{tag:24s} {len(events):4d} points  step {first.step}: {first.value:.6g}  ...  step {last.step}: {last.value:.6g}")
sys.exit(0 if tags else 1)
