"""``tocsin serve``, ``tocsin keys create`` and ``tocsin bench http``, as plain Typer command functions
(registered in :mod:`tocsin.cli.main` and :mod:`tocsin.cli.bench`), plus :func:`start_demo_api` for
``tocsin demo``."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

from tocsin.cli.common import console, write_json

DEFAULT_SPEC = Path(__file__).resolve().parent.parent / "specs" / "transactions.yaml"


def serve_command(
    spec_path: Path = typer.Argument(DEFAULT_SPEC, metavar="SPEC", help="pipeline spec (YAML); the reference one by default"),
    host: str = typer.Option("127.0.0.1", help="address to bind; anything but loopback needs auth on"),
    port: int = typer.Option(8000, help="port to bind"),
    no_auth: bool = typer.Option(False, "--no-auth", help="every caller is admin (refused unless bound to a loopback address)"),
    keys_file: Optional[Path] = typer.Option(None, help="API key file (default: env TOCSIN_API_KEYS_FILE or .tocsin/api-keys.json)"),
    sensitive: list[str] = typer.Option([], "--sensitive", help="an event field to encrypt at rest and mask for viewers (repeatable); needs TOCSIN_ENCRYPTION_KEY"),
    cors_origin: list[str] = typer.Option([], "--cors-origin", help="allow browser calls from this origin (repeatable); CORS is off by default"),
    max_body_mb: float = typer.Option(8.0, help="largest request body accepted, in MiB (413 above)"),
    header_timeout: float = typer.Option(10.0, help="seconds a client has to send a request's head (408 and closed after)"),
    keep_alive_timeout: int = typer.Option(5, help="seconds an idle kept-alive connection stays open"),
    fresh: bool = typer.Option(False, help="ignore and replace the API's pipeline checkpoint"),
    log_level: str = typer.Option("info", help="debug, info, warning or error (logs are JSON lines on stderr)"),
) -> None:
    """Serve the HTTP API and the live dashboard (one worker: the pipeline's state lives in the process)."""
    from tocsin.api import AuthConfig, create_app
    from tocsin.api.auth import check_bind
    from tocsin.sensitive import key_from_env
    from tocsin.api.logs import configure_json_logging
    from tocsin.api.server import run_foreground
    from tocsin.api.service import CHECKPOINT_PARTITION, journal_path
    from tocsin.checkpoint import open_checkpoint_store
    from tocsin.sources.journal import Journal, JournalLocked
    from tocsin.spec import SpecError, load_spec

    try:
        spec = load_spec(spec_path)
    except SpecError as error:
        console.print(f"[red]{error}[/]")
        raise typer.Exit(2) from None
    try:
        auth = AuthConfig.from_env(keys_file, enabled=not no_auth)
        check_bind(host, auth)
    except ValueError as error:
        console.print(f"[red]{error}[/]")
        raise typer.Exit(2) from None
    if auth.enabled and not auth.keys.list() and not auth.jwt_secret:
        console.print(
            "[yellow]no API keys yet: every request will get 401. Create one with "
            "`tocsin keys create --role admin` (or set TOCSIN_JWT_SECRET for JWTs).[/]"
        )
    checkpoints = open_checkpoint_store(spec.stream.checkpoint_url or Path(spec.checkpoint.dir), spec.name)
    journal_file = journal_path(spec.checkpoint.dir, spec.name)
    if fresh:
        checkpoints.delete(CHECKPOINT_PARTITION)
        for part in ("", "-wal", "-shm"):  # the journal and SQLite's write-ahead files
            journal_file.with_name(journal_file.name + part).unlink(missing_ok=True)
    configure_json_logging(log_level)
    try:
        journal = Journal(journal_file)
    except JournalLocked as error:
        console.print(f"[red]{error}: another `tocsin serve` of this pipeline is running[/]")
        raise typer.Exit(2) from None
    try:
        app = create_app(
            spec, auth, sensitive_fields=list(sensitive) or None, encryption_key=key_from_env(), checkpoints=checkpoints,
            journal=journal, cors_origins=list(cors_origin), max_body_bytes=int(max_body_mb * 1024 * 1024),
        )
    except ValueError as error:
        console.print(f"[red]{error}[/]")
        raise typer.Exit(2) from None
    console.print(f"tocsin API and dashboard on http://{host}:{port}/dashboard/ (OpenAPI: http://{host}:{port}/docs)")
    run_foreground(app, host, port, log_level, header_timeout=header_timeout, keep_alive_timeout=keep_alive_timeout)


def keys_create_command(
    role: str = typer.Option(..., help="viewer, analyst or admin"),
    name: str = typer.Option("", help="a note saying who or what the key is for"),
    keys_file: Optional[Path] = typer.Option(None, help="API key file (default: env TOCSIN_API_KEYS_FILE or .tocsin/api-keys.json)"),
) -> None:
    """Create an API key: printed once; only its SHA-256 hash is stored."""
    from tocsin.api.auth import AuthConfig

    try:
        auth = AuthConfig.from_env(keys_file)
        key, record = auth.keys.create(role, name)
    except ValueError as error:
        console.print(f"[red]{error}[/]")
        raise typer.Exit(2) from None
    console.print(f"created {record['role']} key {record['id']} in {auth.keys.path} (shown once; send it as X-API-Key):", style="bold")
    print(key)


def bench_http_command(
    rate: float = typer.Option(500, help="single-event requests per second (open loop)"),
    duration: float = typer.Option(10, help="seconds of single-event load"),
    batch_size: int = typer.Option(1_000, help="events per batch request"),
    batches: int = typer.Option(100, help="batch requests"),
    users: int = typer.Option(5_000, help="simulated cards"),
    refit_every: Optional[int] = typer.Option(None, help="override the spec's detector.refit_every (0: never refit)"),
    json_out: Optional[Path] = typer.Option(None, "--json", help="write the figures to this file"),
) -> None:
    """POST /v1/score: single-event p50/p99 at a fixed rate, and batch events/s (server and load generator in separate processes)."""
    from tocsin.bench.http import run_http_bench

    refit: int | None = -1 if refit_every is None else (None if refit_every == 0 else refit_every)
    result = run_http_bench(rate=rate, duration=duration, batch_size=batch_size, batches=batches, users=users,
                            refit_every=refit, console=console)
    write_json(json_out, result)


def start_demo_api(runner: Any, host: str = "127.0.0.1", port: int = 8000) -> Any:
    """Serve the API + dashboard for a running ``tocsin demo``: the service reads the runner's stream
    (behind its core's lock) and store, and accepts no events of its own; auth is off, so it binds
    loopback only. Returns the server thread (``.url``, ``.stop()``); the caller prints the URL and
    stops it after the run."""
    from tocsin.api import AuthConfig, Service, create_app
    from tocsin.api.auth import KeyStore, check_bind
    from tocsin.api.server import start_in_thread

    auth = AuthConfig(enabled=False, keys=KeyStore(None))
    check_bind(host, auth)
    service = Service(runner.spec, attach_to=runner)
    app = create_app(runner.spec, auth, service=service)
    return start_in_thread(app, host=host, port=port)
