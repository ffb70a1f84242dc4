"""Bar charts as inline SVG, drawn on the server: no JavaScript, nothing fetched, readable without styles."""

from decimal import Decimal

from django.utils.formats import number_format
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

WIDTH, HEIGHT, TOP, BOTTOM, LEFT = 360, 130, 14, 18, 2
MAX_BAR = 40  # a chart of two bars keeps them bar-shaped
FEW = 6


def _number(value) -> str:
    if isinstance(value, (Decimal, float)):  # roubles: kopecks of kopecks matter on small spends
        return number_format(value, 2 if value >= 10 else 4, use_l10n=True)
    return number_format(value, use_l10n=True)


def bar_chart(rows: list[dict], value: str, label: str, title: str, label_format=str) -> SafeString:
    """An SVG of one bar per row (`rows[i][value]`), each titled "<label>: <value>" for a tooltip and
    for screen readers; the first, middle and last labels under the axis."""
    values = [row[value] or 0 for row in rows]
    peak = max(values, default=0) or 1
    slot = (WIDTH - LEFT) / max(len(rows), 1)
    plot = HEIGHT - TOP - BOTTOM
    bars = []
    for i, (row, amount) in enumerate(zip(rows, values, strict=True)):
        height = plot * float(amount) / float(peak)
        width = min(max(slot * 0.8, 1), MAX_BAR)
        bars.append((f"{LEFT + i * slot + (slot - width) / 2:.1f}", f"{TOP + plot - height:.1f}", f"{width:.1f}",
                     f"{height:.1f}", label_format(row[label]), _number(amount)))
    # A few bars (models, keys): each named under itself. Many (days): the first, middle and last, kept
    # inside the picture.
    few = len(rows) <= FEW
    ticks = range(len(rows)) if few else sorted({0, len(rows) // 2, len(rows) - 1})
    anchors = ["middle" if few or 0 < i < len(rows) - 1 else "start" if i == 0 else "end" for i in ticks]
    return format_html(
        '<svg viewBox="0 0 {w} {h}" role="img" aria-label="{title}" xmlns="http://www.w3.org/2000/svg">'
        '<title>{title}</title>'
        '<line class="axis" x1="{left}" y1="{base}" x2="{w}" y2="{base}"/>'
        '<text x="{left}" y="10">{peak}</text>{bars}{labels}</svg>',
        w=WIDTH, h=HEIGHT, title=title, left=LEFT, base=TOP + plot, peak=_number(max(values, default=0)),
        bars=format_html_join("", '<rect class="bar" x="{}" y="{}" width="{}" height="{}">'
                                  '<title>{}: {}</title></rect>', bars),
        labels=format_html_join("", '<text x="{}" y="{}" text-anchor="{}">{}</text>', (
            (f"{LEFT + i * slot + slot / 2:.1f}", HEIGHT - 6, anchor, label_format(rows[i][label]))
            for i, anchor in zip(ticks, anchors, strict=True))),
    )
