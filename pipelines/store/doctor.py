"""`churn doctor`: integrity checks of a work directory, each problem with the fix to apply."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field

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
    # What `churn doctor --fix` runs for this problem (None: the fix is the user's to apply).
    repair: Callable[[], str] | None = field(default=None, compare=False, repr=False)


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


def check_stores(settings: Settings, wd: Workdir) -> list[Finding]:
    """Prefect's home database and the MLflow store must not be half-migrated (a kill inside
    one of their schema migrations), which would make every later start fail."""
    from pipelines.store import repair as store_repair

    prefect_env = {"PREFECT_HOME": str(wd.prefect_home)}
    stores = [
        (
            "Prefect home database",
            wd.prefect_home / "prefect.db",
            store_repair.prefect_versions,
            store_repair.PREFECT_MIGRATE,
            prefect_env,
        )
    ]
    if not settings.tracking.tracking_uri:
        stores.append(
            (
                "MLflow store",
                wd.mlflow_db,
                store_repair.mlflow_versions,
                store_repair.MLFLOW_MIGRATE,
                {},
            )
        )
    out = []
    for name, db, versions, migrate, env in stores:
        if not db.is_file():
            continue
        state = store_repair.inspect(db, versions())
        if not state.half_migrated:
            out.append(Finding(name, True, f"schema at {state.current or 'no revision yet'}"))
            continue
        # Some packages finish a killed migration themselves: only a store whose migrations
        # fail on a copy of it is reported.
        failure = store_repair.heals_itself(state, migrate, env)
        if failure is None:
            out.append(
                Finding(name, True, "a killed migration left tables; the next start finishes it")
            )
            continue

        def fix(state=state, migrate=migrate, env=env) -> str:
            return store_repair.repair(state, migrate, env)

        out.append(
            Finding(
                name,
                False,
                f"{db} is half-migrated (a run was killed inside a schema migration): "
                f"at revision {state.current or 'none'} with leftover table(s) "
                f"{', '.join(state.leftovers)}; every start fails ({failure})",
                "`churn doctor --fix` copies the store aside, drops the leftovers and runs the "
                "migrations again (or, if they cannot finish, starts a new store)",
                repair=fix,
            )
        )
    scratch = wd.mlflow_db.with_name(wd.mlflow_db.name + ".creating")
    if scratch.exists():

        def drop_scratch() -> str:
            scratch.unlink(missing_ok=True)
            return f"removed {scratch}"

        out.append(
            Finding(
                "MLflow store",
                False,
                f"{scratch} is left from a store creation that was killed",
                "`churn doctor --fix` removes it (the next run would too)",
                repair=drop_scratch,
            )
        )
    return out


def apply_repairs(findings: list[Finding]) -> list[str]:
    """Run the repairs of the failed findings that have one; what each did."""
    return [f"fixed {f.check}: {f.repair()}" for f in findings if not f.ok and f.repair]


def run_checks(settings: Settings) -> list[Finding]:
    wd = Workdir.from_settings(settings)
    if not wd.home.exists():
        # Nothing there is nothing broken: `churn demo` or `churn simulate` creates it.
        return [Finding("work directory", True, f"{wd.home} does not exist yet (nothing to check)")]
    findings = [
        Finding("work directory", os.access(wd.home, os.W_OK), str(wd.home), "make it writable")
    ]
    findings += check_partial_files(wd)
    stores = check_stores(settings, wd)
    findings += stores
    # Opening a half-migrated MLflow store would fail (or migrate it): its registry waits.
    mlflow_broken = any(f.check == "MLflow store" and not f.ok for f in stores)
    if not wd.db_path.exists():
        return findings + [Finding("warehouse", False, "no DuckDB warehouse", "run `churn ingest`")]
    con = connect(wd, read_only=True)
    try:
        tables = _tables(con)
        findings += check_manifest(con, tables)
        registry, existing = ([], set()) if mlflow_broken else check_registry(settings, wd)
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
