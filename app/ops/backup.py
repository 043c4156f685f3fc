"""Backups and restores of the database: ``flask albedo backup PATH`` / ``restore PATH``.

PostgreSQL: ``pg_dump`` in its custom format, connected as the schema owner
(``MIGRATIONS_DATABASE_URL``), so the archive holds the tables with their owner, the grants
to the app role, the row-level security switches (ENABLED and FORCED) and policies, the
triggers and every tenant's rows. FORCE binds the owner too, so both directions run with
row security on and the session's ``app.cross_tenant`` set, which the policies honour: the
dump sees every tenant, and the restore may write every tenant. Roles are not in a
database dump (they belong to the cluster): the target cluster must have the owner and app
roles first (``.ci/postgres-setup.sql``, ``docker/postgres-init.sh``).

SQLite: the online backup API copies a consistent snapshot while the app keeps running,
and restores the same way into the configured file.

Redis is not backed up: it never holds the only copy of anything (DESIGN, *Durable work*).
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from sqlalchemy.engine import make_url

from app.settings import Settings


class BackupError(RuntimeError):
    """A backup or restore could not be done; the message says why and what to do."""


@dataclass(frozen=True)
class PgTarget:
    url: str  # a libpq URL (postgresql://…) without the password, for pg_dump / pg_restore
    database: str
    password: str | None


def pg_target(settings: Settings) -> PgTarget:
    """The owner's connection as libpq wants it (SQLAlchemy's driver suffix removed)."""
    url = make_url(settings.migrations_database_url).set(drivername="postgresql")
    return PgTarget(url.set(password=None).render_as_string(hide_password=False),
                    url.database or "", url.password)


def _pg_env(pg: PgTarget) -> dict[str, str]:
    env = dict(os.environ)
    if pg.password:  # in the environment, not on a command line other users can read
        env["PGPASSWORD"] = pg.password
    # The policies let a session that says so see and write every tenant (see the module doc).
    env["PGOPTIONS"] = (env.get("PGOPTIONS", "") + " -c app.cross_tenant=on").strip()
    return env


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise BackupError(f"{name} is not installed: install the PostgreSQL client tools "
                          "(Debian: postgresql-client) of the server's major version")
    return path


def _run(command: list[str], pg: PgTarget) -> None:
    # The command is a PostgreSQL tool found on PATH with arguments built here: no shell.
    done = subprocess.run(command, env=_pg_env(pg), capture_output=True, text=True,  # noqa: S603
                          check=False)
    if done.returncode != 0:
        raise BackupError(f"{Path(command[0]).name} failed: {done.stderr.strip()[-2000:]}")


def _sqlite_path(settings: Settings) -> Path:
    path = urlsplit(settings.database_url).path
    # sqlite:////abs/path → //abs/path; sqlite:///rel → /rel
    return Path(unquote(path[1:] if path.startswith("//") else path.lstrip("/") or path))


def backup(settings: Settings, path: str | os.PathLike) -> Path:
    """Write a backup of the whole database to ``path`` (refuses to overwrite a file)."""
    target = Path(path)
    if target.exists():
        raise BackupError(f"{target} exists: choose a new file name (backups are never "
                          "overwritten)")
    target.parent.mkdir(parents=True, exist_ok=True)
    if settings.is_sqlite:
        source = sqlite3.connect(_sqlite_path(settings))
        copy = sqlite3.connect(target)
        try:
            with copy:
                source.backup(copy)
        finally:
            copy.close()
            source.close()
        return target
    pg = pg_target(settings)
    _run([_tool("pg_dump"), "--format=custom", "--enable-row-security", "--no-password",
          f"--file={target}", f"--dbname={pg.url}"], pg)
    return target


def _pg_has_tables(pg: PgTarget) -> bool:
    import sqlalchemy as sa

    url = make_url(pg.url).set(drivername="postgresql+psycopg", password=pg.password)
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            return bool(conn.execute(sa.text(
                "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")).scalar())
    finally:
        engine.dispose()


def restore(settings: Settings, path: str | os.PathLike, replace: bool = False) -> None:
    """Restore ``path`` into the configured database.

    Without ``replace`` the database must be empty (a fresh one, made for the restore);
    with it, what is there is dropped first. Stop the web and worker processes before,
    and start them after (their caches describe the old data).
    """
    source = Path(path)
    if not source.is_file():
        raise BackupError(f"{source} is not a file")
    if settings.is_sqlite:
        _restore_sqlite(settings, source, replace)
        return
    pg = pg_target(settings)
    if not replace and _pg_has_tables(pg):
        raise BackupError(f"database {pg.database!r} is not empty: restore into a fresh "
                          "database, or pass --replace to drop what is there")
    command = [_tool("pg_restore"), "--enable-row-security", "--no-password", "--exit-on-error",
               "--single-transaction", f"--dbname={pg.url}"]
    if replace:
        command += ["--clean", "--if-exists"]
    _run([*command, str(source)], pg)


def _restore_sqlite(settings: Settings, source: Path, replace: bool) -> None:
    backup_db = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    try:
        if backup_db.execute("PRAGMA integrity_check").fetchone()[0] != "ok":
            raise BackupError(f"{source} is damaged (integrity check failed)")
        if not backup_db.execute("SELECT 1 FROM sqlite_master WHERE name = 'alembic_version'"
                                 ).fetchone():
            raise BackupError(f"{source} is not an Albedo backup (no alembic_version)")
        target_path = _sqlite_path(settings)
        target = sqlite3.connect(target_path)
        try:
            if not replace and target.execute(
                    "SELECT count(*) FROM sqlite_master WHERE type = 'table'").fetchone()[0]:
                raise BackupError(f"{target_path} is not empty: pass --replace to overwrite it")
            with target:
                backup_db.backup(target)
        finally:
            target.close()
    finally:
        backup_db.close()
