"""Snapshot mode: robust type inference and target mapping for a customer-level table."""

from __future__ import annotations

import re

import polars as pl

NULL_TOKENS = ["", "na", "n/a", "nan", "null", "none", "?", "-", "missing"]
TRUE_TOKENS = {"yes", "true", "y", "t"}
FALSE_TOKENS = {"no", "false", "n", "f"}


def clean_text(frame: pl.DataFrame) -> pl.DataFrame:
    """Strip whitespace and turn the usual missing-value spellings into nulls."""
    return frame.with_columns(
        pl.when(pl.col(c).str.strip_chars().str.to_lowercase().is_in(NULL_TOKENS))
        .then(None)
        .otherwise(pl.col(c).str.strip_chars())
        .alias(c)
        for c in frame.columns
    )


def infer_types(frame: pl.DataFrame, min_numeric_share: float = 0.95) -> pl.DataFrame:
    """Text columns become numbers (incl. 5e+05), 0/1 for yes/no and true/false, or categories."""
    out = []
    for c in frame.columns:
        col = frame[c]
        present = col.drop_nulls()
        if present.len() == 0:
            out.append(pl.lit(None, dtype=pl.Float64).alias(c))
            continue
        lower = present.str.to_lowercase()
        if lower.is_in(list(TRUE_TOKENS | FALSE_TOKENS)).all():
            out.append(
                pl.when(pl.col(c).is_null())
                .then(None)
                .otherwise(pl.col(c).str.to_lowercase().is_in(list(TRUE_TOKENS)))
                .cast(pl.Float64)
                .alias(c)
            )
            continue
        as_num = present.str.replace_all(",", "").cast(pl.Float64, strict=False)
        if as_num.null_count() <= (1 - min_numeric_share) * present.len():
            out.append(pl.col(c).str.replace_all(",", "").cast(pl.Float64, strict=False).alias(c))
        else:
            out.append(pl.col(c).cast(pl.Utf8).alias(c))
    return frame.select(out)


def target_vector(frame: pl.DataFrame, target: str, positive: str) -> pl.Series:
    """1 where the target equals the positive value (compared as trimmed, case-insensitive text)."""
    if target not in frame.columns:
        raise ValueError(
            f"target column {target!r} not found; columns are: {', '.join(frame.columns[:30])}"
        )
    col = frame[target].cast(pl.Utf8).str.strip_chars().str.to_lowercase()
    if col.null_count():
        raise ValueError(f"target column {target!r} has {col.null_count()} missing value(s)")
    y = (col == str(positive).strip().lower()).cast(pl.Int8)
    if y.n_unique() < 2:
        seen = ", ".join(sorted(set(col.unique().to_list()))[:5])
        raise ValueError(
            f"target {target!r} has a single class for positive value {positive!r} (values seen: {seen})"
        )
    return y


def _name_tokens(name: str) -> list[str]:
    return [t.lower() for t in re.findall(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\d+", name)]


def column_families(frame: pl.DataFrame, min_size: int = 3) -> dict[str, list[str]]:
    """Numeric columns whose names differ in one word or number only (BILL_AMT1..6, day/eve/night).

    Detected from names and types alone, so the same families exist in any file with the same
    header. Keys are readable names of the family's total, e.g. ``bill amt * (sum)``.
    """
    numeric = [c for c in frame.columns if frame.schema[c].is_numeric()]
    groups: dict[tuple, list[str]] = {}
    for c in numeric:
        tokens = _name_tokens(c)
        for i in range(len(tokens)):
            key = (tuple(tokens[:i]), tuple(tokens[i + 1 :]))
            groups.setdefault(key, []).append(c)
    out: dict[str, list[str]] = {}
    seen: set[tuple[str, ...]] = set()
    for (head, tail), members in groups.items():
        # A family shares at least one word; single-word names have nothing in common.
        if not (head or tail) or len(members) < min_size or tuple(members) in seen:
            continue
        seen.add(tuple(members))
        name = " ".join([*head, "*", *tail]) + " (sum)"
        if name not in frame.columns:
            out[name] = members
    return out


def add_family_sums(frame: pl.DataFrame, families: dict[str, list[str]]) -> pl.DataFrame:
    """Append one total per column family (missing members count as zero)."""
    return frame.with_columns(
        pl.sum_horizontal(pl.col(m).cast(pl.Float64) for m in members).alias(name)
        for name, members in families.items()
    )


def _varying(family: str, member: str) -> str:
    """The word or number in which `member` differs from the rest of its family."""
    position = family.split(" ").index("*")
    return _name_tokens(member)[position]


def add_family_shares(
    frame: pl.DataFrame,
    families: dict[str, list[str]],
    shares: bool = True,
    ratios: bool = True,
) -> pl.DataFrame:
    """Each member's share of its family total, and ratios of totals of parallel families.

    Parallel families vary in the same words (BILL_AMT1..6 and PAY_AMT1..6; day/eve/night
    minutes and charges): the ratio of their totals (paid ÷ billed, charge per minute) is a
    quantity neither total shows. Like the totals, found from names and types alone; needs the
    totals (add_family_sums) in `frame`. A zero total gives a missing share, not infinity.
    """

    def ratio(num: pl.Expr, den: pl.Expr) -> pl.Expr:
        return pl.when(den != 0).then(num / den).otherwise(None)

    exprs = []
    for name, members in families.items() if shares else ():
        stem = name.removesuffix(" (sum)")
        exprs += [
            ratio(pl.col(m).cast(pl.Float64).fill_null(0.0), pl.col(name)).alias(
                f"{m} (share of {stem})"
            )
            for m in members
        ]
    keys = {name: tuple(_varying(name, m) for m in members) for name, members in families.items()}
    names = sorted(families) if ratios else []
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            if keys[a] == keys[b]:
                label = f"{a.removesuffix(' (sum)')} / {b.removesuffix(' (sum)')}"
                exprs.append(ratio(pl.col(a), pl.col(b)).alias(label))
    return frame.with_columns(exprs)


def derive_families(
    x: pl.DataFrame, families: dict[str, list[str]], shares: bool, ratios: bool
) -> pl.DataFrame:
    """Family totals; as configured, each member's share and ratios of parallel totals."""
    x = add_family_sums(x, families)
    if shares or ratios:
        x = add_family_shares(x, families, shares, ratios)
    return x
