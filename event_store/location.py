"""Where the service keeps its data: SQLite files in a data folder, or one PostgreSQL database."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit


@dataclass(frozen=True)
class PostgresAddress:
    host: str
    port: int
    dbname: str
    user: str
    password: str

    @classmethod
    def from_url(cls, url: str) -> PostgresAddress:
        parts = urlsplit(url)
        if parts.scheme not in ("postgresql", "postgres"):
            raise ValueError(f"not a postgresql:// URL: {parts.scheme}://…")
        return cls(
            host=parts.hostname or "127.0.0.1",
            port=parts.port or 5432,
            dbname=unquote(parts.path.lstrip("/")) or "postgres",
            user=unquote(parts.username or "postgres"),
            password=unquote(parts.password or ""),
        )


@dataclass(frozen=True)
class StoreLocation:
    """Either a data folder of SQLite files (the embedded default) or a PostgreSQL database."""

    data_dir: Path
    postgres: PostgresAddress | None = None
    pool_size: int = 8

    @classmethod
    def from_settings(
        cls, data_dir: Path, database_url: str | None, pool_size: int = 8
    ) -> StoreLocation:
        postgres = PostgresAddress.from_url(database_url) if database_url else None
        return cls(data_dir=data_dir, postgres=postgres, pool_size=pool_size)

    @property
    def is_postgres(self) -> bool:
        return self.postgres is not None

    @property
    def events_path(self) -> Path:
        return self.data_dir / "events.sqlite"

    @property
    def read_models_path(self) -> Path:
        return self.data_dir / "read_models.sqlite"

    def event_store_env(self) -> dict[str, str]:
        """The environment the ``eventsourcing`` library reads its persistence settings from."""
        if self.postgres is None:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            return {
                "PERSISTENCE_MODULE": "eventsourcing.sqlite",
                "SQLITE_DBNAME": str(self.events_path),
                "SQLITE_LOCK_TIMEOUT": "10",
            }
        return {
            "PERSISTENCE_MODULE": "eventsourcing.postgres",
            "POSTGRES_HOST": self.postgres.host,
            "POSTGRES_PORT": str(self.postgres.port),
            "POSTGRES_DBNAME": self.postgres.dbname,
            "POSTGRES_USER": self.postgres.user,
            "POSTGRES_PASSWORD": self.postgres.password,
            "POSTGRES_POOL_SIZE": str(self.pool_size),
            "POSTGRES_MAX_OVERFLOW": str(self.pool_size),
            "POSTGRES_CONN_MAX_AGE": "3600",
            # No ping per checkout (a round trip each): the library retries reads and writes
            # on connection errors, and the pool retires broken connections.
            "POSTGRES_PRE_PING": "n",
            "POSTGRES_LOCK_TIMEOUT": "10",
            # Left off on purpose: unsafe in eventsourcing 9.5.6 (readers can skip events).
            "POSTGRES_ENABLE_DB_FUNCTIONS": "n",
        }
