"""``flask albedo backup PATH`` and ``flask albedo restore PATH``."""

from __future__ import annotations

import click
from flask import current_app
from flask.cli import AppGroup


def register(group: AppGroup) -> None:
    @group.command("backup")
    @click.argument("path", type=click.Path(dir_okay=False))
    def backup_command(path):
        """Back up the database to PATH (PostgreSQL: pg_dump custom format as the owner;
        SQLite: the online backup API). Never overwrites a file."""
        from app.ops.backup import BackupError, backup

        try:
            written = backup(current_app.extensions["albedo.settings"], path)
        except BackupError as exc:
            raise click.ClickException(str(exc)) from None
        click.echo(f"backup written to {written} ({written.stat().st_size} bytes)")

    @group.command("restore")
    @click.argument("path", type=click.Path(exists=True, dir_okay=False))
    @click.option("--replace", is_flag=True,
                  help="Drop what the database holds first (default: it must be empty).")
    def restore_command(path, replace):
        """Restore the backup at PATH into the configured database (stop the web and worker
        processes first; start them after)."""
        from app.extensions import db
        from app.ops.backup import BackupError, restore

        db.engine.dispose()  # this process holds no connection into what is replaced
        try:
            restore(current_app.extensions["albedo.settings"], path, replace=replace)
        except BackupError as exc:
            raise click.ClickException(str(exc)) from None
        click.echo(f"restored {path}; start the web and worker processes again")
