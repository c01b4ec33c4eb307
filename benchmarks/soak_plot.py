"""The soak's picture: one panel per sampled figure against time, so that a person can look
at a run rather than read it. The warm-up is shaded, every proxy cut is a dotted line, and
the resources judged for a trend carry their fitted line and its slope."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from soak_trend import Trend

# (CSV column, panel title, how a value is shown on the axis)
PANELS = (
    ("rss_kib", "RSS (MiB)", 1 / 1024),
    ("fds", "open file descriptors", 1.0),
    ("threads", "threads", 1.0),
    ("msgs_per_s", "queue messages delivered per second", 1.0),
    ("p99_ms", "p99 latency, send to receive (ms)", 1.0),
)


def plot(
    path: Path,
    rows: Sequence[dict[str, float | None]],
    cuts: Sequence[float],
    warmup: float,
    found: Sequence[Trend],
    title: str,
) -> None:
    import matplotlib

    matplotlib.use("Agg")  # files only: no display here, and none wanted
    import matplotlib.pyplot as plt

    fitted = {trend.name: trend for trend in found}
    figure, axes = plt.subplots(len(PANELS), 1, figsize=(10, 12), sharex=True)
    minutes = [float(row["t"] or 0.0) / 60 for row in rows]
    for index, (ax, (column, label, scale)) in enumerate(zip(axes, PANELS, strict=True)):
        points = [
            (m, float(value) * scale)
            for m, value in zip(minutes, (row[column] for row in rows), strict=True)
            if value is not None
        ]
        if points:
            ax.plot(*zip(*points, strict=True), marker=".", linewidth=1)
        if warmup > 0:
            shade = "warm-up (not judged)" if index == 0 else None
            ax.axvspan(0, warmup / 60, color="0.9", label=shade)
        for at in cuts:
            ax.axvline(at / 60, color="tab:red", linestyle=":", linewidth=0.8)
        trend = fitted.get(column)
        if trend is not None:
            judged = [m for m in minutes if m * 60 >= warmup]
            ax.plot(
                [judged[0], judged[-1]],
                [trend.first * scale, trend.last * scale],
                color="tab:orange",
                linewidth=2,
                label=f"fit: {trend.slope_per_minute:+.3g}/min (bound {trend.bound:g})",
            )
        if column == "p99_ms":
            ax.set_yscale("log")  # the windows with a cut are orders of magnitude above
        ax.set_ylabel(label, fontsize=8)
        ax.grid(True, alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7, loc="upper left")
    axes[-1].set_xlabel("minutes (dotted red: a proxy cut)")
    figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=80)
    plt.close(figure)
