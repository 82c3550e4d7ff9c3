"""Smoke test for scripts/kafka.sh, run by hand (not a pytest module).

    eval "$(scripts/kafka.sh start /tmp/crm-kafka)"
    .venv/bin/python scripts/kafka/smoke.py produce TOPIC 1000   # idempotent, acks=all
    .venv/bin/python scripts/kafka/smoke.py consume TOPIC 1000   # new consumer group, from earliest
    scripts/kafka.sh restart-broker /tmp/crm-kafka
    .venv/bin/python scripts/kafka/smoke.py consume TOPIC 1000   # the data survived
    scripts/kafka.sh stop /tmp/crm-kafka

Uses kafka-python and CRM_TEST_KAFKA_BOOTSTRAP; exits non-zero on any mismatch.
"""

import os
import sys
import time
import uuid

from kafka import KafkaConsumer, KafkaProducer


def produce(bootstrap: str, topic: str, n: int) -> None:
    producer = KafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        enable_idempotence=True,
        linger_ms=5,
        retries=2**31 - 1,
        request_timeout_ms=10_000,
        delivery_timeout_ms=60_000,
    )
    t0 = time.monotonic()
    futures = [
        producer.send(topic, key=str(i % 16).encode(), value=f"msg-{i}".encode()) for i in range(n)
    ]
    producer.flush(timeout=60)
    metas = [f.get(timeout=60) for f in futures]
    dt = time.monotonic() - t0
    idem = producer.config.get("enable_idempotence")
    pid = getattr(getattr(producer, "_transaction_manager", None), "producer_id_and_epoch", None)
    producer.close(timeout=10)
    parts = sorted({m.partition for m in metas})
    print(f"produced {n} to {topic} in {dt:.2f}s, partitions {parts}, idempotence={idem}, {pid}")


def consume(bootstrap: str, topic: str, n: int) -> None:
    group = f"smoke-{uuid.uuid4().hex[:8]}"
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=15_000,
    )
    t0 = time.monotonic()
    seen = set()
    for rec in consumer:
        seen.add(rec.value.decode())
        if len(seen) >= n:
            break
    consumer.commit()
    dt = time.monotonic() - t0
    consumer.close()
    expected = {f"msg-{i}" for i in range(n)}
    missing = expected - seen
    print(f"consumed {len(seen)} distinct from {topic} with group {group} in {dt:.2f}s")
    if missing:
        sys.exit(f"missing {len(missing)} messages, e.g. {sorted(missing)[:5]}")


def main() -> None:
    bootstrap = os.environ["CRM_TEST_KAFKA_BOOTSTRAP"]
    cmd, topic, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    {"produce": produce, "consume": consume}[cmd](bootstrap, topic, n)


if __name__ == "__main__":
    main()
