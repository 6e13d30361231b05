"""Charts as inline SVG, for the self-contained HTML reports (data, evaluation).

The platform runs offline, so a report page cannot load a chart library
from a CDN, and one shipped with it would add megabytes of JavaScript
(plotly) or a heavy dependency (matplotlib) for a few bar and line charts,
each a few dozen lines of SVG. Every text that reaches a chart is escaped:
the pages show tenants' data.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

COLORS = ("#8da0cb", "#1b9e77", "#d95f02", "#7570b3")
WIDTH = 820

CSS = """body{font:14px/1.45 system-ui,sans-serif;margin:24px auto;max-width:900px;color:#222}
h1{font-size:22px}h2{margin-top:32px;border-bottom:1px solid #ddd}h3{margin:18px 0 4px}
.cards{display:flex;gap:12px;flex-wrap:wrap}.card{border:1px solid #ddd;border-radius:6px;
padding:8px 14px}.card b{display:block;font-size:22px}.muted{color:#777;font-weight:normal}
table{border-collapse:collapse;margin:6px 0}td,th{border:1px solid #ddd;padding:3px 8px;
text-align:left;vertical-align:top}pre{background:#f6f6f6;padding:8px;white-space:pre-wrap;
word-break:break-word;max-height:320px;overflow:auto;font-size:12px}del{background:#fdd;
color:#900}ins{background:#dfd;color:#060;text-decoration:none}summary{cursor:pointer}
caption{text-align:left;font-size:12px;color:#777}
svg .t{font-size:13px;font-weight:600}svg .a{font-size:10px;fill:#555}svg .g{stroke:#eee}"""


def escape(value: Any) -> str:
    return html.escape(str(value), quote=True)


def short_number(n: float) -> str:
    return f"{n / 1000:.0f}k" if n >= 10000 else f"{n / 1000:.1f}k" if n >= 1000 else f"{n:.3g}"


def _value(value: float) -> str:
    return str(value) if isinstance(value, int) else f"{value:.4g}"


def _no_data(title: str) -> str:
    return f"<p class='muted'>{escape(title)}: no data.</p>"


def _legend(names: Sequence[str], color: dict[str, str], width: int) -> list[str]:
    return [
        f"<rect x='{width - 12 - 120 * (len(names) - s)}' y='6' width='12' height='12' "
        f"fill='{color[name]}'/><text x='{width - 12 - 120 * (len(names) - s) + 16}' y='16' "
        f"class='a'>{escape(name)}</text>"
        for s, name in enumerate(names)
    ]


def bar_chart(categories: list[str], series: dict[str, list[float]], title: str) -> str:
    """A grouped vertical bar chart (one group per category, one bar per series).

    Series named before/after (or base/tuned) keep their colours whichever of them is present.
    """
    if not categories or not any(any(v) for v in series.values()):
        return _no_data(title)
    width, height, left, bottom, top = WIDTH, 260, 48, 64, 28
    plot_w, plot_h = width - left - 12, height - bottom - top
    peak = max(max(v) for v in series.values()) or 1
    group = plot_w / len(categories)
    bar = group * 0.8 / len(series)
    fixed = {"before": COLORS[0], "after": COLORS[1], "base": COLORS[0], "tuned": COLORS[1]}
    color = {name: fixed.get(name, COLORS[i % len(COLORS)]) for i, name in enumerate(series)}
    parts = [
        f"<svg viewBox='0 0 {width} {height}' width='{width}' role='img'>",
        f"<text x='{left}' y='16' class='t'>{escape(title)}</text>",
    ]
    for tick in (0, 0.5, 1):
        y = top + plot_h * (1 - tick)
        parts.append(f"<line x1='{left}' x2='{width - 12}' y1='{y:.1f}' y2='{y:.1f}' class='g'/>")
        parts.append(
            f"<text x='{left - 6}' y='{y + 4:.1f}' class='a' text-anchor='end'>"
            f"{short_number(peak * tick)}</text>"
        )
    for s, (name, values) in enumerate(series.items()):
        for c, value in enumerate(values):
            h = plot_h * value / peak
            x = left + c * group + group * 0.1 + s * bar
            parts.append(
                f"<rect x='{x:.1f}' y='{top + plot_h - h:.1f}' width='{bar:.1f}' "
                f"height='{h:.1f}' fill='{color[name]}'>"
                f"<title>{escape(name)} · {escape(categories[c])}: {_value(value)}</title></rect>"
            )
    for c, cat in enumerate(categories):
        x, y = left + (c + 0.5) * group, top + plot_h + 12
        label = cat if len(cat) <= 14 else cat[:13] + "…"
        parts.append(
            f"<text x='{x:.1f}' y='{y}' class='a' text-anchor='end' "
            f"transform='rotate(-35 {x:.1f} {y})'>{escape(label)}</text>"
        )
    parts += _legend(list(series), color, width)
    parts.append("</svg>")
    return "".join(parts)


def line_chart(
    series: dict[str, list[tuple[float, float]]], title: str, x_label: str = "step"
) -> str:
    """Lines of ``(x, y)`` points on shared axes (a loss curve); one dot per point."""
    points = [p for values in series.values() for p in values]
    if not points:
        return _no_data(title)
    width, height, left, bottom, top = WIDTH, 280, 56, 40, 28
    plot_w, plot_h = width - left - 16, height - bottom - top
    x_lo, x_hi = min(p[0] for p in points), max(p[0] for p in points)
    y_lo, y_hi = min(0.0, min(p[1] for p in points)), max(p[1] for p in points)
    x_span, y_span = (x_hi - x_lo) or 1, (y_hi - y_lo) or 1
    color = {name: COLORS[(i + 1) % len(COLORS)] for i, name in enumerate(series)}

    def xy(x: float, y: float) -> tuple[float, float]:
        return left + plot_w * (x - x_lo) / x_span, top + plot_h * (1 - (y - y_lo) / y_span)

    parts = [
        f"<svg viewBox='0 0 {width} {height}' width='{width}' role='img'>",
        f"<text x='{left}' y='16' class='t'>{escape(title)}</text>",
    ]
    for tick in (0, 0.25, 0.5, 0.75, 1):
        y = top + plot_h * (1 - tick)
        parts.append(f"<line x1='{left}' x2='{width - 16}' y1='{y:.1f}' y2='{y:.1f}' class='g'/>")
        parts.append(
            f"<text x='{left - 6}' y='{y + 4:.1f}' class='a' text-anchor='end'>"
            f"{y_lo + y_span * tick:.3g}</text>"
        )
    for tick in (0, 0.5, 1):
        x = left + plot_w * tick
        parts.append(
            f"<text x='{x:.1f}' y='{height - 18}' class='a' text-anchor='middle'>"
            f"{x_lo + x_span * tick:.4g}</text>"
        )
    parts.append(
        f"<text x='{left + plot_w / 2:.1f}' y='{height - 4}' class='a' "
        f"text-anchor='middle'>{escape(x_label)}</text>"
    )
    for name, values in series.items():
        coords = [xy(x, y) for x, y in sorted(values)]
        if len(coords) > 1:
            path = " ".join(f"{x:.1f},{y:.1f}" for x, y in coords)
            parts.append(
                f"<polyline points='{path}' fill='none' stroke='{color[name]}' stroke-width='1.5'/>"
            )
        for (x, y), (vx, vy) in zip(coords, sorted(values), strict=True):
            parts.append(
                f"<circle cx='{x:.1f}' cy='{y:.1f}' r='2.5' fill='{color[name]}'>"
                f"<title>{escape(name)} at {x_label} {vx:g}: {vy:.4g}</title></circle>"
            )
    parts += _legend(list(series), color, width)
    parts.append("</svg>")
    return "".join(parts)


def heatmap(matrix: list[list[int]], rows: list[str], columns: list[str], title: str) -> str:
    """A matrix of counts as shaded cells with their numbers (a confusion matrix:
    ``rows`` the true classes, ``columns`` the predicted ones)."""
    if not matrix or not any(any(r) for r in matrix):
        return _no_data(title)
    cell = max(22, min(64, 560 // max(len(columns), 1)))
    left, top = 130, 54
    width, height = left + cell * len(columns) + 16, top + cell * len(rows) + 30
    peak = max(max(r) for r in matrix) or 1
    parts = [
        f"<svg viewBox='0 0 {width} {height}' width='{width}' role='img'>",
        f"<text x='4' y='16' class='t'>{escape(title)}</text>",
        f"<text x='{left}' y='34' class='a'>predicted →</text>",
    ]
    for c, name in enumerate(columns):
        x = left + (c + 0.5) * cell
        parts.append(
            f"<text x='{x:.1f}' y='{top - 6}' class='a' text-anchor='middle'>"
            f"{escape(name[:10])}</text>"
        )
    for r, name in enumerate(rows):
        y = top + r * cell
        parts.append(
            f"<text x='{left - 6}' y='{y + cell / 2 + 4:.1f}' class='a' text-anchor='end'>"
            f"{escape(name[:18])}</text>"
        )
        for c, value in enumerate(matrix[r]):
            shade = value / peak
            fill = f"rgb({int(255 - 200 * shade)},{int(255 - 150 * shade)},{int(255 - 60 * shade)})"
            ink = "#fff" if shade > 0.6 else "#222"
            parts.append(
                f"<rect x='{left + c * cell}' y='{y}' width='{cell - 1}' height='{cell - 1}' "
                f"fill='{fill}'><title>true {escape(name)}, predicted {escape(columns[c])}: "
                f"{value}</title></rect><text x='{left + (c + 0.5) * cell:.1f}' "
                f"y='{y + cell / 2 + 4:.1f}' class='a' text-anchor='middle' fill='{ink}'>"
                f"{value}</text>"
            )
    parts.append(
        f"<text x='4' y='{height - 8}' class='a'>rows: true class (recall reads across)</text>"
    )
    parts.append("</svg>")
    return "".join(parts)


def reliability_chart(bins: list[dict[str, Any]], title: str) -> str:
    """The reliability diagram: each confidence bin's accuracy against the diagonal a
    calibrated model follows (bins with ``low``, ``high``, ``count``, ``accuracy``)."""
    filled = [b for b in bins if b.get("count")]
    if not filled:
        return _no_data(title)
    size, left, top = 260, 44, 28
    width, height = left + size + 180, top + size + 36
    total = sum(b["count"] for b in filled)
    parts = [
        f"<svg viewBox='0 0 {width} {height}' width='{width}' role='img'>",
        f"<text x='4' y='16' class='t'>{escape(title)}</text>",
        f"<line x1='{left}' y1='{top + size}' x2='{left + size}' y2='{top}' stroke='#999' "
        "stroke-dasharray='4 3'/>",
    ]
    for tick in (0, 0.5, 1):
        parts.append(
            f"<text x='{left - 6}' y='{top + size * (1 - tick) + 4:.1f}' class='a' "
            f"text-anchor='end'>{tick:g}</text><text x='{left + size * tick:.1f}' "
            f"y='{top + size + 14}' class='a' text-anchor='middle'>{tick:g}</text>"
        )
    for b in filled:
        x, w = left + size * b["low"], size * (b["high"] - b["low"])
        h = size * b["accuracy"]
        parts.append(
            f"<rect x='{x + 1:.1f}' y='{top + size - h:.1f}' width='{w - 2:.1f}' height='{h:.1f}' "
            f"fill='{COLORS[1]}' fill-opacity='{0.35 + 0.65 * b['count'] / total:.2f}'>"
            f"<title>confidence {b['low']:.1f}-{b['high']:.1f}: {b['count']} records, accuracy "
            f"{b['accuracy']:.3f}, mean confidence {b['confidence']:.3f}</title></rect>"
        )
    parts.append(
        f"<text x='{left + size / 2:.1f}' y='{height - 4}' class='a' text-anchor='middle'>"
        "confidence</text><text x='{0}' y='{1}' class='a'>bars: accuracy per bin</text>".format(
            left + size + 14, top + 20
        )
    )
    parts.append(
        f"<text x='{left + size + 14}' y='{top + 36}' class='a'>dashes: perfectly calibrated</text>"
    )
    parts.append("</svg>")
    return "".join(parts)
