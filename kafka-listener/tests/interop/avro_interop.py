#!/usr/bin/env python3
"""Confluent's Python client against our embedded broker and registry.

    avro_interop.py check
    avro_interop.py produce BOOTSTRAP REGISTRY_URL TOPIC COUNT
    avro_interop.py consume BOOTSTRAP REGISTRY_URL TOPIC COUNT

`produce` writes COUNT records with confluent_kafka's AvroSerializer (key
schema "string", value schema ORDER_SCHEMA, auto-registered under
TopicNameStrategy) and prints each sent {"key", "value"} as a JSON line.
`consume` reads COUNT records from the start of TOPIC with AvroDeserializer
(writer schemas fetched by id from the registry) and prints each as a JSON
line. Exit status 0 on success; 2 when the package is missing (`check`).
"""

import json
import sys

ORDER_SCHEMA = json.dumps({
    "type": "record",
    "name": "Order",
    "namespace": "shop",
    "fields": [
        {"name": "id", "type": "string"},
        {"name": "amount_cents", "type": "long"},
        {"name": "note", "type": ["null", "string"], "default": None},
        {"name": "tags", "type": {"type": "array", "items": "string"}},
    ],
})


def check():
    try:
        import confluent_kafka  # noqa: F401
        from confluent_kafka.schema_registry.avro import AvroSerializer  # noqa: F401
        import fastavro  # noqa: F401
    except ImportError as e:
        print(f"missing: {e}", file=sys.stderr)
        sys.exit(2)
    print(f"confluent-kafka {confluent_kafka.version()}, librdkafka {confluent_kafka.libversion()[0]}")


def clients(registry):
    from confluent_kafka.schema_registry import SchemaRegistryClient
    return SchemaRegistryClient({"url": registry})


def produce(bootstrap, registry, topic, count):
    from confluent_kafka import Producer
    from confluent_kafka.schema_registry.avro import AvroSerializer
    from confluent_kafka.serialization import MessageField, SerializationContext

    sr = clients(registry)
    key_ser = AvroSerializer(sr, json.dumps("string"))
    value_ser = AvroSerializer(sr, ORDER_SCHEMA)
    producer = Producer({"bootstrap.servers": bootstrap})
    errors = []

    def delivered(err, _msg):
        if err is not None:
            errors.append(str(err))

    for i in range(count):
        key = f"py-{i}"
        value = {
            "id": key,
            "amount_cents": 1000 + i,
            "note": None if i % 2 == 0 else f"note {i}",
            "tags": [f"t{j}" for j in range(i % 3)],
        }
        producer.produce(
            topic,
            key=key_ser(key, SerializationContext(topic, MessageField.KEY)),
            value=value_ser(value, SerializationContext(topic, MessageField.VALUE)),
            on_delivery=delivered,
        )
        print(json.dumps({"key": key, "value": value}), flush=True)
    left = producer.flush(30)
    if left or errors:
        sys.exit(f"not delivered: {left} left, errors {errors}")


def consume(bootstrap, registry, topic, count):
    from confluent_kafka import Consumer, TopicPartition
    from confluent_kafka.schema_registry.avro import AvroDeserializer
    from confluent_kafka.serialization import MessageField, SerializationContext
    import time

    sr = clients(registry)
    key_de = AvroDeserializer(sr)
    value_de = AvroDeserializer(sr)
    consumer = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": "python-interop",
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
    })
    consumer.subscribe([topic])
    got = 0
    deadline = time.time() + 60
    while got < count and time.time() < deadline:
        msg = consumer.poll(0.5)
        if msg is None:
            continue
        if msg.error():
            sys.exit(f"consume error: {msg.error()}")
        key = key_de(msg.key(), SerializationContext(topic, MessageField.KEY))
        value = value_de(msg.value(), SerializationContext(topic, MessageField.VALUE))
        print(json.dumps({"key": key, "value": value}), flush=True)
        got += 1
    consumer.close()
    if got < count:
        sys.exit(f"read {got} of {count} records in 60 s")


def main(argv):
    if len(argv) >= 2 and argv[1] == "check":
        return check()
    if len(argv) != 6 or argv[1] not in ("produce", "consume"):
        sys.exit(__doc__)
    mode, bootstrap, registry, topic, count = argv[1], argv[2], argv[3], argv[4], int(argv[5])
    (produce if mode == "produce" else consume)(bootstrap, registry, topic, count)


if __name__ == "__main__":
    main(sys.argv)
