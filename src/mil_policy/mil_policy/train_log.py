"""Training logs: a CSV (easy to diff and plot anywhere), TensorBoard scalars and a curve PNG.

On resume the logs continue from the checkpoint's iteration: CSV rows and TensorBoard events of
iterations after it (written before the interruption, then lost with it) are dropped, so a resumed
run's logs read like an uninterrupted one.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

CSV_NAME = "metrics.csv"
# val_other_demo: validation loss when each task adapts on another task's demo (see train.validation_loss).
CSV_FIELDS = ("iteration", "train_loss", "val_loss", "seconds", "val_other_demo")
TENSORBOARD_DIR = "tensorboard"
CURVE_NAME = "training_curve.png"


class TrainLog:
    """Append-only metrics of one run directory (rank 0 only)."""

    def __init__(self, out: Path, start_iteration: int = 0) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.csv_path = out / CSV_NAME
        self._truncate(start_iteration)
        new = not self.csv_path.exists()
        self._file = self.csv_path.open("a", newline="")
        self._csv = csv.writer(self._file)
        if new:
            self._csv.writerow(CSV_FIELDS)
            self._file.flush()
        purge = start_iteration + 1 if start_iteration else None  # drop events logged after the checkpoint
        self.writer = SummaryWriter(str(out / TENSORBOARD_DIR), purge_step=purge)

    def _truncate(self, start_iteration: int) -> None:
        if not self.csv_path.exists():
            return
        rows = read_metrics(self.csv_path)
        kept = [r for r in rows if r["iteration"] <= start_iteration] if start_iteration else []
        with self.csv_path.open("w", newline="") as f:
            w = csv.writer(f)
            w.writerow(CSV_FIELDS)
            for r in kept:
                w.writerow([_fmt(r[k]) for k in CSV_FIELDS])

    def log(
        self,
        iteration: int,
        train_loss: float | None,
        val_loss: float | None,
        seconds: float,
        val_other_demo: float | None = None,
    ) -> None:
        self._csv.writerow([iteration, _fmt(train_loss), _fmt(val_loss), f"{seconds:.3f}", _fmt(val_other_demo)])
        self._file.flush()
        if train_loss is not None:
            self.writer.add_scalar("loss/train", train_loss, iteration)
        if val_loss is not None:
            self.writer.add_scalar("loss/val", val_loss, iteration)
        if val_other_demo is not None:
            self.writer.add_scalar("loss/val_other_demo", val_other_demo, iteration)
        self.writer.add_scalar("time/seconds", seconds, iteration)

    def close(self) -> None:
        self._file.close()
        self.writer.close()


def _fmt(value: float | int | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def read_metrics(path: Path) -> list[dict[str, float | None]]:
    """Rows of a metrics CSV with numbers parsed (empty cells: None)."""
    rows = []
    with path.open(newline="") as f:
        for r in csv.DictReader(f):
            rows.append({k: (float(r[k]) if r.get(k) not in (None, "") else None) for k in CSV_FIELDS})
            rows[-1]["iteration"] = int(rows[-1]["iteration"] or 0)
    return rows


def plot_curve(csv_path: Path, png_path: Path, title: str = "") -> Path | None:
    """Train and validation loss against iteration (log scale); None when there is nothing to plot."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = read_metrics(csv_path)
    train = [(r["iteration"], r["train_loss"]) for r in rows if r["train_loss"] is not None]
    val = [(r["iteration"], r["val_loss"]) for r in rows if r["val_loss"] is not None]
    other = [(r["iteration"], r["val_other_demo"]) for r in rows if r["val_other_demo"] is not None]
    if not train and not val:
        return None
    fig, ax = plt.subplots(figsize=(7, 4))
    curves = (
        (train, "train (meta-batch mean)", "-"),
        (val, "validation tasks", "o-"),
        (other, "validation, given another task's demo", "x--"),
    )
    for points, label, style in curves:
        if points:
            ax.plot(*zip(*points, strict=True), style, label=label, markersize=3)
    ax.set_xlabel("meta-iteration")
    # Neutral wording: MIL adapts on the demo, the baselines condition on it.
    ax.set_ylabel("loss on the evaluation demo, given a demo")
    if all(v > 0 for _, v in train + val + other):
        ax.set_yscale("log")
    ax.grid(True, alpha=0.3)
    ax.legend()
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(png_path, dpi=100)
    plt.close(fig)
    return png_path
