"""Wake-ups when new events are stored in PostgreSQL: LISTEN on the library's NOTIFY channel."""

from __future__ import annotations

import logging
import threading

import psycopg
from psycopg import sql

from event_store.location import PostgresAddress

log = logging.getLogger(__name__)


def listen_for_new_events(
    postgres: PostgresAddress, channel: str, wakeup: threading.Event, stop: threading.Event
) -> threading.Thread:
    """Set ``wakeup`` whenever events are stored, until ``stop``; reconnects after errors."""

    def listen() -> None:
        while not stop.is_set():
            try:
                with psycopg.connect(
                    host=postgres.host,
                    port=postgres.port,
                    dbname=postgres.dbname,
                    user=postgres.user,
                    password=postgres.password,
                    autocommit=True,
                ) as conn:
                    conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
                    while not stop.is_set():
                        for _ in conn.notifies(timeout=0.5, stop_after=1):
                            wakeup.set()
            except psycopg.Error:
                log.warning("event listener lost its connection; reconnecting", exc_info=True)
                stop.wait(1.0)

    thread = threading.Thread(target=listen, name="event-listener", daemon=True)
    thread.start()
    return thread
