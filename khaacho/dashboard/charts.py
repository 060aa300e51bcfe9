"""Geometry for the server-rendered SVG charts: hourly stacked columns and hourly lines."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

WIDTH, HEIGHT = 480, 170
LEFT, RIGHT, TOP, BOTTOM = 40, 6, 10, 22


def hour_axis(hours: int, now: datetime | None = None) -> list[str]:
    """ISO keys of every hour in the window, oldest first (matching the stats' ``hour`` values)."""
    current = (now or datetime.now(UTC)).replace(minute=0, second=0, microsecond=0)
    return [(current - timedelta(hours=i)).isoformat() for i in range(hours - 1, -1, -1)]


def _nice_ceiling(value: float) -> float:
    if value <= 0:
        return 1.0
    magnitude = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * magnitude:
            return step * magnitude
    return 10 * magnitude


def _number(value: float) -> str:
    return f"{value:,.0f}" if value >= 10 or value == int(value) else f"{value:.1f}"


def _frame(count: int, top: float) -> dict:
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    step = plot_w / max(count, 1)
    ticks = [{"y": TOP + plot_h - plot_h * f, "label": _number(top * f)} for f in (0, 0.5, 1)]
    return {"width": WIDTH, "height": HEIGHT, "left": LEFT, "right": WIDTH - RIGHT, "top": TOP,
            "bottom": TOP + plot_h, "plot_h": plot_h, "step": step, "yticks": ticks, "max": top}


def _x_labels(axis: Sequence[str], frame: dict) -> list[dict]:
    every = max(1, math.ceil(len(axis) / 6))
    labels = []
    for i, key in enumerate(axis):
        if i % every == 0:
            moment = datetime.fromisoformat(key)
            text = moment.strftime("%H:%M") if len(axis) <= 48 else moment.strftime("%d %b")
            labels.append({"x": LEFT + frame["step"] * (i + 0.5), "label": text})
    return labels


def stacked_columns(axis: Sequence[str], series: Sequence[tuple[str, str, dict[str, float]]],
                    unit: str = "") -> dict:
    """Columns per hour, one stacked segment per series ``(name, css class, {hour: value})``."""
    totals = [sum(values.get(key, 0) for _, _, values in series) for key in axis]
    frame = _frame(len(axis), _nice_ceiling(max(totals, default=0)))
    top = frame["max"]
    bars = []
    for i, key in enumerate(axis):
        base = frame["bottom"]
        for name, css, values in series:
            value = values.get(key, 0)
            if not value:
                continue
            height = frame["plot_h"] * value / top
            base -= height
            bars.append({
                "x": LEFT + frame["step"] * i + frame["step"] * 0.1, "y": base,
                "w": max(frame["step"] * 0.8, 1), "h": height, "css": css,
                "title": f"{datetime.fromisoformat(key):%d %b %H:00} UTC: {_number(value)} {name}{unit}",
            })
    frame.update(bars=bars, xlabels=_x_labels(axis, frame), legend=[(n, c) for n, c, _ in series],
                 empty=not any(totals))
    return frame


def lines(axis: Sequence[str], series: Sequence[tuple[str, str, dict[str, float | None]]],
          unit: str = "") -> dict:
    """One polyline per series ``(name, css class, {hour: value})``, with a dot per known hour."""
    peak = max((v for _, _, values in series for v in values.values() if v is not None), default=0)
    frame = _frame(len(axis), _nice_ceiling(peak))
    top = frame["max"]
    drawn = []
    for name, css, values in series:
        points = []
        for i, key in enumerate(axis):
            value = values.get(key)
            if value is not None:
                points.append({
                    "x": LEFT + frame["step"] * (i + 0.5),
                    "y": frame["bottom"] - frame["plot_h"] * value / top,
                    "title": f"{datetime.fromisoformat(key):%d %b %H:00} UTC: {name} {_number(value)}{unit}",
                })
        drawn.append({"name": name, "css": css, "points": points,
                      "path": " ".join(f"{p['x']:.1f},{p['y']:.1f}" for p in points)})
    frame.update(series=drawn, xlabels=_x_labels(axis, frame), legend=[(n, c) for n, c, _ in series],
                 empty=not peak)
    return frame
