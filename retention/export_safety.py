"""Exports nobody can weaponise: spreadsheet formulas neutralised, names that stay in their folder.

OWASP's CSV-injection guidance: a cell starting with `=`, `+`, `-`, `@`, a tab or a carriage
return is run as a formula by spreadsheet programs; prefixing it with a single quote makes it
text. Only text columns are touched: numbers stay numbers (a negative value is a number, not a
formula), dates stay dates.
"""

from __future__ import annotations

import re

import polars as pl

FORMULA_START = r"^[=+\-@\t\r]"
# One plain file-name component: no separators, no `..`, no NUL, nothing absolute.
SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


def neutralise(frame: pl.DataFrame) -> pl.DataFrame:
    """Every text cell a spreadsheet would run as a formula, prefixed with a single quote."""
    text = [c for c, t in frame.schema.items() if t in (pl.Utf8, pl.Categorical, pl.Enum)]
    return frame.with_columns(
        pl.when(pl.col(c).cast(pl.Utf8).str.contains(FORMULA_START))
        .then(pl.lit("'") + pl.col(c).cast(pl.Utf8))
        .otherwise(pl.col(c).cast(pl.Utf8))
        .alias(c)
        for c in text
    )


def safe_name(name: str, what: str = "name") -> str:
    """`name` when it is one plain file-name component; ValueError with one readable line if not."""
    if not isinstance(name, str) or not SAFE_NAME.fullmatch(name) or ".." in name:
        shown = repr(name)[:60]
        raise ValueError(
            f"{what} {shown} is not allowed: use letters, digits, '.', '_' or '-' "
            "(no path separators, '..', NUL or absolute paths)"
        )
    return name
