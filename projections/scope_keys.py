"""A pipeline's scope key: its organization and pipeline as one integer that leads the big indexes.

Most reads of the stage visits name one organization and one pipeline. Indexes led by those two
texts compare them on every step of a build's sort — a 36-character organization id equal on
nearly every row, then the pipeline — and the stage visits' four indexes took 11.8 s to build after
a bulk load of the benchmark's book. Led by one integer they take 6.4 (each built alone).

The key is a hash, so two pipelines may share one: the organization and the pipeline stay in the
indexes (last) and in every read's conditions, which tell such pipelines apart.
"""

from __future__ import annotations

from functools import lru_cache
from hashlib import blake2b

SCOPE_KEY = "scope_key"


@lru_cache(maxsize=4096)
def scope_key(organization_id: str, pipeline_id: str) -> int:
    """A signed 64-bit integer, the same in every process and release (BLAKE2b of both ids)."""
    digest = blake2b(f"{organization_id}\x1f{pipeline_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def in_scope(organization_id: str, pipeline_id: str) -> tuple[str, list[object]]:
    """SQL naming a pipeline's rows by its key, then by both ids, and the parameters."""
    return (
        f"{SCOPE_KEY} = ? AND organization_id = ? AND pipeline_id = ?",
        [scope_key(organization_id, pipeline_id), organization_id, pipeline_id],
    )
