"""Every setting of the service, read from ``CRM_*`` environment variables."""

from __future__ import annotations

from pathlib import Path
from uuid import UUID

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from event_store.location import StoreLocation

DEFAULT_ORGANIZATION_ID = UUID("00000000-0000-4000-8000-000000000001")
"""The organization of an install that has not created any (here, not in :mod:`crm.identity`,
so that commands such as ``crm replay`` need not import the web framework it uses)."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CRM_", extra="ignore")

    host: str = Field("127.0.0.1", description="Address `crm serve` listens on.")
    port: int = Field(8000, ge=1, le=65535, description="Port `crm serve` listens on.")
    data_dir: Path = Field(
        Path("./var"), description="Folder of the SQLite files (embedded default)."
    )
    database_url: str | None = Field(
        None,
        description="postgresql://user:password@host:port/db selects PostgreSQL for events "
        "and read models; unset: SQLite in data_dir.",
    )
    pool_size: int = Field(8, ge=1, le=100, description="Database connections per pool.")
    projections_in_process: bool = Field(
        True,
        description="`crm serve` runs the projection worker in-process; set false when "
        "`crm project` runs it as a separate process.",
    )
    workers: int = Field(
        1,
        ge=1,
        le=64,
        description="Web worker processes of `crm serve` (several need PostgreSQL); with more "
        "than one, the projection worker runs in a process of its own.",
    )
    projection_batch_size: int = Field(
        1000, ge=1, le=100_000, description="Events per projection transaction."
    )
    read_wait_seconds: float = Field(
        5.0, ge=0, le=60, description="Longest a read waits for its min_position."
    )
    log_level: str = Field("info", description="debug, info, warning or error.")
    jwt_issuer: str | None = Field(
        None, description="Issuer (iss) whose signed JWTs are accepted, e.g. MONTON's identity."
    )
    jwt_key: str | None = Field(
        None, description="Key that verifies those JWTs: a PEM public key or an HMAC secret."
    )
    jwt_algorithm: str = Field("RS256", description="The one JWT algorithm accepted.")
    jwt_audience: str | None = Field(None, description="Required JWT audience (aud), if any.")
    jwt_organization_claim: str = Field(
        "org", description="JWT claim holding the caller's organization id."
    )
    kafka_bootstrap_servers: str = Field(
        "127.0.0.1:9092", description="Kafka brokers for `crm relay` and Kafka-fed workers."
    )
    kafka_topic: str = Field("crm.events", description="Topic the event stream is published to.")
    kafka_partitions: int = Field(
        6, ge=1, le=1000, description="Partitions of the topic when the relay creates it."
    )
    relay_batch_size: int = Field(
        1000, ge=1, le=100_000, description="Events per relay batch (acknowledged together)."
    )

    def location(self) -> StoreLocation:
        return StoreLocation.from_settings(self.data_dir, self.database_url, self.pool_size)
