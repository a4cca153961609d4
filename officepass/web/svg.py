"""The console's charts as SVG, drawn on the server (no chart library, nothing from a CDN): they
scale to a phone's width (viewBox), carry a title and a description for screen readers, and the
numbers behind each are the CSV beside it."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from markupsafe import Markup, escape

from officepass.usage import WEEKDAYS, Habits, HeatMap, Occupancy

INK, GRID, SEAT, AUTO, OVER = "#1f2937", "#d1d5db", "#1d4ed8", "#b45309", "#b91c1c"
W, H, LEFT, BOTTOM, TOP = 640, 240, 44, 28, 12


def _frame(key: str, title: str, description: str, body: str, height: int = H) -> Markup:
    return Markup(
        f'<svg viewBox="0 0 {W} {height}" width="100%" role="img" aria-labelledby="{key}-t {key}-d" '
        f'xmlns="http://www.w3.org/2000/svg" font-family="sans-serif" font-size="12" data-chart="{key}">'
        f'<title id="{key}-t">{escape(title)}</title><desc id="{key}-d">{escape(description)}</desc>'
        f'{body}</svg>')


def step_chart(data: Occupancy) -> Markup:
    """Seats held through the day, as a step line over 0-24 h."""
    plot_w, plot_h = W - LEFT - 10, H - BOTTOM - TOP
    top = max(data.capacity, max((s for _, s in data.steps), default=0), 1)

    def x(moment: datetime) -> float:
        hours = (moment - data.steps[0][0]).total_seconds() / 3600
        return LEFT + plot_w * min(max(hours, 0.0), 24.0) / 24

    def y(seats: int) -> float:
        return TOP + plot_h * (1 - seats / top)

    parts = []
    for seats in range(top + 1):
        level = y(seats)
        parts.append(f'<line x1="{LEFT}" x2="{W - 10}" y1="{level:.1f}" y2="{level:.1f}" stroke="{GRID}"/>'
                     f'<text x="{LEFT - 8}" y="{level + 4:.1f}" text-anchor="end" '
                     f'fill="{INK}">{seats}</text>')
    for hour in range(0, 25, 3):
        hx = LEFT + plot_w * hour / 24
        parts.append(f'<text x="{hx:.1f}" y="{H - 8}" text-anchor="middle" fill="{INK}">{hour:02d}</text>')
    cap = y(data.capacity)
    parts.append(f'<line x1="{LEFT}" x2="{W - 10}" y1="{cap:.1f}" y2="{cap:.1f}" stroke="{OVER}" '
                 f'stroke-dasharray="4 3"/><text x="{W - 12}" y="{cap - 4:.1f}" text-anchor="end" '
                 f'fill="{OVER}">{data.capacity} seats</text>')
    points, held = [], data.steps[0][1]
    for moment, seats in data.steps:
        points.append(f"{x(moment):.1f},{y(held):.1f}")
        points.append(f"{x(moment):.1f},{y(seats):.1f}")
        held = seats
    points.append(f"{x(data.until):.1f},{y(held):.1f}")
    parts.append(f'<polyline fill="none" stroke="{SEAT}" stroke-width="2.5" points="{" ".join(points)}"/>')
    peak = max(s for _, s in data.steps)
    return _frame("occupancy", f"Seats held on {data.day.isoformat()}",
                  f"Step chart of the seats held through the day; {len(data.steps) - 1} changes, "
                  f"at most {peak} of {data.capacity} seats.", "".join(parts))


def heat_map(data: HeatMap) -> Markup:
    """Share of seats held by weekday (rows) and hour (columns)."""
    cell_w, cell_h, left, top = (W - 44) / 24, 26, 40, 8
    parts = []
    for day, row in enumerate(data.share):
        cy = top + day * cell_h
        parts.append(f'<text x="{left - 6}" y="{cy + cell_h / 2 + 4:.1f}" text-anchor="end" '
                     f'fill="{INK}">{WEEKDAYS[day]}</text>')
        for hour, share in enumerate(row):
            cx = left + hour * cell_w
            parts.append(f'<rect x="{cx:.1f}" y="{cy}" width="{cell_w - 1:.1f}" height="{cell_h - 1}" '
                         f'fill="{SEAT}" fill-opacity="{0.06 + 0.94 * share:.2f}"><title>{WEEKDAYS[day]} '
                         f'{hour:02d}:00 {share:.0%}</title></rect>')
    for hour in range(0, 24, 3):
        parts.append(f'<text x="{left + (hour + 0.5) * cell_w:.1f}" y="{top + 7 * cell_h + 14}" '
                     f'text-anchor="middle" fill="{INK}">{hour:02d}</text>')
    busiest = max(((share, d, h) for d, row in enumerate(data.share) for h, share in enumerate(row)),
                  default=(0.0, 0, 0))
    return _frame("utilisation", f"Seats held by weekday and hour, last {data.weeks} weeks",
                  f"Heat map; the busiest hour is {WEEKDAYS[busiest[1]]} {busiest[2]:02d}:00 at "
                  f"{busiest[0]:.0%} of {data.capacity} seats.", "".join(parts), height=top + 7 * cell_h + 22)


def habit_bars(data: Habits) -> Markup:
    """Per week: checkouts by the member, automatic ones after an overstay, and overstays."""
    plot_w, plot_h = W - LEFT - 10, H - BOTTOM - TOP - 18
    top = max([max(m, a, o) for _, m, a, o in data.weeks] + [1])
    group = plot_w / max(len(data.weeks), 1)
    bar = group / 4
    parts = []
    for n, (week, member, auto, overstay) in enumerate(data.weeks):
        gx = LEFT + n * group + bar / 2
        for k, (value, colour) in enumerate(((member, SEAT), (auto, AUTO), (overstay, OVER))):
            bh = plot_h * value / top
            parts.append(f'<rect x="{gx + k * bar:.1f}" y="{TOP + plot_h - bh:.1f}" width="{bar - 2:.1f}" '
                         f'height="{bh:.1f}" fill="{colour}"><title>{week.isoformat()}: {value}</title>'
                         '</rect>')
        parts.append(f'<text x="{gx + 1.5 * bar:.1f}" y="{TOP + plot_h + 16}" text-anchor="middle" '
                     f'fill="{INK}">{week.strftime("%m-%d")}</text>')
    legend = ((SEAT, "checked out by the member"), (AUTO, "checked out by the door"), (OVER, "overstays"))
    for k, (colour, label) in enumerate(legend):
        lx = LEFT + k * 200
        parts.append(f'<rect x="{lx}" y="{H - 14}" width="10" height="10" fill="{colour}"/>'
                     f'<text x="{lx + 14}" y="{H - 5}" fill="{INK}">{label}</text>')
    totals = [sum(m for _, m, _, _ in data.weeks), sum(a for _, _, a, _ in data.weeks),
              sum(o for _, _, _, o in data.weeks)]
    return _frame("habits", "Checkouts and overstays per week",
                  f"Grouped bars per week; in all {totals[0]} checkouts by members, {totals[1]} by the door "
                  f"after an overstay, {totals[2]} overstays.", "".join(parts))


def ranking(key: str, rows: Sequence[tuple[str, float]], title: str) -> Markup:
    """Horizontal bars: seat-hours per store."""
    row_h, left = 24, 150
    top = max([v for _, v in rows] + [1.0])
    parts = []
    for n, (store, hours) in enumerate(rows):
        y = 6 + n * row_h
        bw = (W - left - 60) * hours / top
        parts.append(f'<text x="{left - 8}" y="{y + 15}" text-anchor="end" fill="{INK}">{escape(store)}'
                     '</text>'
                     f'<rect x="{left}" y="{y + 3}" width="{bw:.1f}" height="{row_h - 8}" fill="{SEAT}"/>'
                     f'<text x="{left + bw + 6:.1f}" y="{y + 15}" fill="{INK}">{hours:.1f} h</text>')
    return _frame(key, title, "; ".join(f"{s}: {h:.1f} seat-hours" for s, h in rows) or "no store yet",
                  "".join(parts), height=max(30, 12 + len(rows) * row_h))
