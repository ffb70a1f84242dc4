"""Statements as documents: CSV (for finance systems and spreadsheets) and the month argument."""

import csv
import datetime
import io

from .selectors import Statement

MONTH_FORMAT = "YYYY-MM"


def parse_month(text: str) -> datetime.date:
    """"2026-11" → 2026-11-01; ValueError naming the expected form otherwise."""
    try:
        month = datetime.datetime.strptime(text or "", "%Y-%m").date()
    except ValueError:
        raise ValueError(f"month must be {MONTH_FORMAT}, e.g. 2026-11") from None
    if not 2000 <= month.year <= 9998:  # 9999-12 has no next month to end at
        raise ValueError("month must be from 2000-01 to 9998-12")
    return month


def _cell(value) -> str:
    text = str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text  # no formulas in a spreadsheet


MODEL_COLUMNS = ("section", "provider", "model", "cost_centre", "vat_rate", "requests", "prompt_tokens",
                 "completion_tokens", "cached_tokens", "reasoning_tokens", "amount", "vat", "total")


def statement_csv(statement: Statement) -> str:
    """Lines by model, lines by cost centre, then the total (roubles to the kopeck; amount without VAT)."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["organisation", _cell(statement.organisation_name), "month", f"{statement.month:%Y-%m}", "currency", "RUB"])
    writer.writerow(MODEL_COLUMNS)
    for section, lines in (("model", statement.by_model), ("cost_centre", statement.by_cost_centre)):
        for line in lines:
            writer.writerow([_cell(v) for v in (
                section, line.label.get("provider", ""), line.label.get("model", ""), line.label.get("cost_centre", ""),
                line.vat_rate, line.requests, line.prompt_tokens, line.completion_tokens, line.cached_tokens,
                line.reasoning_tokens, line.amount, line.vat, line.total)])
    totals = statement.totals
    writer.writerow(["total", "", "", "", "", "", "", "", "", "", totals.amount, totals.vat, totals.total])
    return out.getvalue()
