"""apps/portal/charts.py: bars in proportion, every label and title escaped, an empty series drawn empty."""

import re
from decimal import Decimal

from apps.portal.charts import bar_chart


def _heights(svg: str) -> list[float]:
    return [float(h) for h in re.findall(r'<rect class="bar" [^>]*height="([0-9.]+)"', svg)]


def test_bars_are_in_proportion_and_titled_with_their_value():
    svg = bar_chart([{"m": "a", "v": 10}, {"m": "b", "v": 5}, {"m": "c", "v": 0}], "v", "m", "Requests")

    high, half, none = _heights(svg)
    assert half == high / 2 and none == 0
    assert "<title>a: 10</title>" in svg and 'aria-label="Requests"' in svg


def test_labels_and_titles_are_escaped():
    svg = bar_chart([{"m": "<script>x</script>", "v": Decimal("0.0164")}], "v", "m", 'T"&<t>')

    assert "<script>" not in svg and "&lt;script&gt;" in svg
    assert 'aria-label="T&quot;&amp;&lt;t&gt;"' in svg
    assert "0.0164" in svg or "0,0164" in svg


def test_an_empty_series_is_an_empty_chart():
    svg = bar_chart([], "v", "m", "Nothing")
    assert svg.startswith("<svg") and "<rect" not in svg
