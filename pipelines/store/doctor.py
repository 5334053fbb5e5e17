"""`churn doctor`: integrity checks of a work directory, each problem with the fix to apply."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import duckdb

from configs.contracts import CHURN_MODEL, CREDIT_MODEL, TABLES
from configs.schema import Settings
from pipelines.store.warehouse import connect
from pipelines.store.workdir import Workdir

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Finding:
    check: str
    ok: bool
    detail: str
    fix: str = ""


def _tables(con: duckdb.DuckDBPyConnection) -> set[str]:
    rows = con.execute(
        "SELECT table_schema || '.' || table_name FROM information_schema.tables"
    ).fetchall()
    return {r[0] for r in rows}


def check_partial_files(wd: Workdir) -> list[Finding]:
    """Atomic writes leave `.part` files only when a process died mid-write."""
    parts = [p for p in wd.home.rglob("*.part") if p.is_file()]
    if not parts:
        return [Finding("partial files", True, "no orphaned partial files")]
    listing = ", ".join(str(p.relative_to(wd.home)) for p in parts[:5])
    return [
        Finding(
            "partial files",
            False,
            f"{len(parts)} orphaned partial file(s): {listing}",
            "delete them; the step that wrote them did not finish and will rewrite its output",
        )
    ]


def check_manifest(con: duckdb.DuckDBPyConnection, tables: set[str]) -> list[Finding]:
    """Every raw row must come from a file the manifest records as loaded."""
    if "meta.load_manifest" not in tables:
        return [Finding("load manifest", True, "nothing ingested yet")]
    out = []
    for name in TABLES:
        if f"raw.{name}" not in tables:
            continue
        orphans = con.execute(
            # identifier from the contract, never from input
            f'SELECT count(*) FROM raw."{name}" r WHERE NOT EXISTS ('  # noqa: S608
            " SELECT 1 FROM meta.load_manifest m"
            " WHERE m.path = r._source_file AND m.status = 'loaded')"
        ).fetchone()[0]
        if orphans:
            out.append(
                Finding(
                    f"raw.{name} lineage",
                    False,
                    f"{orphans} row(s) come from files not recorded as loaded",
                    "re-run `churn ingest`; it replaces rows of files it reloads",
                )
            )
    if not out:
        out.append(Finding("load manifest", True, "every raw row traces to a loaded file"))
    return out


def check_registry(settings: Settings, wd: Workdir) -> tuple[list[Finding], set[tuple[str, str]]]:
    """Aliases must point at existing versions; returns the (model, version) pairs that exist."""
    import mlflow
    from mlflow.exceptions import MlflowException

    if wd.no_mlflow_store(settings):
        return [Finding("model registry", True, "no MLflow store yet")], set()
    client = mlflow.MlflowClient(tracking_uri=wd.tracking_uri(settings))
    out: list[Finding] = []
    existing: set[tuple[str, str]] = set()
    try:
        models = client.search_registered_models()
    except MlflowException as exc:
        return [
            Finding(
                "model registry",
                False,
                f"cannot read registry: {exc}",
                "check tracking.tracking_uri",
            )
        ], set()
    for rm in models:
        versions = {str(v.version) for v in client.search_model_versions(f"name='{rm.name}'")}
        existing |= {(rm.name, v) for v in versions}
        for alias, version in (rm.aliases or {}).items():
            if str(version) not in versions:
                out.append(
                    Finding(
                        f"{rm.name}@{alias}",
                        False,
                        f"alias points at missing version {version}",
                        f"`churn promote --model {rm.name} --force` or retrain with `churn train`",
                    )
                )
        if "champion" not in (rm.aliases or {}):
            out.append(
                Finding(
                    f"{rm.name}@champion",
                    False,
                    "no champion",
                    f"`churn promote --model {rm.name}`",
                )
            )
    if not out:
        out.append(
            Finding("model registry", True, f"{len(models)} registered model(s), aliases valid")
        )
    return out, existing


def check_lists(
    con: duckdb.DuckDBPyConnection, tables: set[str], existing: set[tuple[str, str]], wd: Workdir
) -> list[Finding]:
    """Published lists must name model versions that exist and have their exports on disk."""
    if "scores.customer_scores" not in tables:
        return [Finding("scores", True, "no scores yet")]
    out = []
    if existing:
        rows = con.execute(
            "SELECT DISTINCT churn_model_version, credit_model_version FROM scores.customer_scores"
        ).fetchall()
        for churn_v, credit_v in rows:
            for name, version in ((CHURN_MODEL, churn_v), (CREDIT_MODEL, credit_v)):
                if version is not None and (name, str(version)) not in existing:
                    out.append(
                        Finding(
                            "scores lineage",
                            False,
                            f"scores made by {name} version {version}, which the registry lacks",
                            "re-score with `churn score --as-of DATE`",
                        )
                    )
    if "retention.list_manifest" in tables:
        for (list_id,) in con.execute(
            "SELECT DISTINCT list_id FROM retention.list_manifest"
        ).fetchall():
            folder = wd.lists / str(list_id)
            if not folder.is_dir():
                out.append(
                    Finding(
                        f"list {list_id}",
                        False,
                        f"exports missing under {folder}",
                        "re-run `churn target` for its as-of date; the list id is reproducible",
                    )
                )
            else:
                loose = [p.name for p in folder.iterdir() if p.stat().st_mode & 0o077]
                if loose:
                    out.append(
                        Finding(
                            f"list {list_id}",
                            False,
                            f"readable by others: {', '.join(loose)}",
                            f"chmod 600 {folder}/*",
                        )
                    )
    if not out:
        out.append(
            Finding("scores and lists", True, "model versions exist and list exports are in place")
        )
    return out


def run_checks(settings: Settings) -> list[Finding]:
    wd = Workdir.from_settings(settings)
    if not wd.home.exists():
        return [Finding("work directory", False, f"{wd.home} does not exist", "run `churn demo`")]
    findings = [
        Finding("work directory", os.access(wd.home, os.W_OK), str(wd.home), "make it writable")
    ]
    findings += check_partial_files(wd)
    if not wd.db_path.exists():
        return findings + [Finding("warehouse", False, "no DuckDB warehouse", "run `churn ingest`")]
    con = connect(wd, read_only=True)
    try:
        tables = _tables(con)
        findings += check_manifest(con, tables)
        registry, existing = check_registry(settings, wd)
        findings += registry
        findings += check_lists(con, tables, existing, wd)
    finally:
        con.close()
    return findings


def describe(findings: list[Finding]) -> list[str]:
    return [
        f"{'ok ' if f.ok else 'FAIL'} {f.check}: {f.detail}"
        + (f"\n     fix: {f.fix}" if not f.ok and f.fix else "")
        for f in findings
    ]


def healthy(findings: list[Finding]) -> bool:
    return all(f.ok for f in findings)
