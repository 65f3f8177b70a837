#!/usr/bin/python3
"""AMQP probe run on the test nodes (Debian's python3 + pika) by the side effect and verifier.

    mq-probe login USER PASSWORD VHOST          -> "ok" or the refusal's class name
    mq-probe declare QUEUE                      declare a queue with no arguments (vhost default type)
    mq-probe publish QUEUE COUNT                publish COUNT numbered messages with confirms -> JSON
    mq-probe consume QUEUE                      drain QUEUE, acknowledging -> JSON of the ids seen
    mq-probe dead-letter QUEUE DLQ              reject one message until it is dead-lettered -> JSON

The application user's credentials come from MQ_USER and MQ_PASSWORD; the vhost is "app".
"""

from __future__ import annotations

import json
import os
import sys
import time

import pika
from pika import exceptions


def connect(user: str | None = None, password: str | None = None, vhost: str = "app") -> pika.BlockingConnection:
    credentials = pika.PlainCredentials(user or os.environ["MQ_USER"], password or os.environ["MQ_PASSWORD"])
    params = pika.ConnectionParameters(
        "127.0.0.1", virtual_host=vhost, credentials=credentials, heartbeat=30, blocked_connection_timeout=60
    )
    return pika.BlockingConnection(params)


def login(user: str, password: str, vhost: str) -> None:
    try:
        connect(user, password, vhost).close()
    except exceptions.AMQPError as error:
        print(type(error).__name__)
        return
    print("ok")


def declare(queue: str) -> None:
    connection = connect()
    connection.channel().queue_declare(queue, durable=True)
    connection.close()
    print("ok")


def publish(queue: str, count: int) -> None:
    confirmed, failed, started = [], [], time.monotonic()
    connection = connect()
    channel = connection.channel()
    channel.confirm_delivery()
    for number in range(count):
        try:
            channel.basic_publish(
                "", queue, str(number).encode(), pika.BasicProperties(delivery_mode=2), mandatory=True
            )
            confirmed.append(number)
        except (exceptions.AMQPError, exceptions.UnroutableError, exceptions.NackError) as error:
            failed.append([number, type(error).__name__])
            time.sleep(0.2)
            if connection.is_closed or channel.is_closed:
                connection = connect()
                channel = connection.channel()
                channel.confirm_delivery()
    connection.close()
    print(json.dumps({"confirmed": confirmed, "failed": failed, "seconds": round(time.monotonic() - started, 2)}))


def consume(queue: str) -> None:
    seen: list[int] = []
    connection = connect()
    channel = connection.channel()
    channel.basic_qos(prefetch_count=500)
    for method, _properties, body in channel.consume(queue, inactivity_timeout=3):
        if method is None:
            break
        seen.append(int(body))
        channel.basic_ack(method.delivery_tag)
    connection.close()
    print(json.dumps({"seen": seen}))


def dead_letter(queue: str, dlq: str) -> None:
    connection = connect()
    channel = connection.channel()
    channel.queue_declare(queue, durable=True)
    marker = f"dead-letter-probe-{time.time()}".encode()
    channel.confirm_delivery()
    channel.basic_publish("", queue, marker, pika.BasicProperties(delivery_mode=2))
    deliveries = 0
    for _ in range(50):
        method, _properties, body = channel.basic_get(queue)
        if method is None:
            break
        deliveries += 1
        channel.basic_reject(method.delivery_tag, requeue=True)
    found = False
    for _ in range(30):
        method, _properties, body = channel.basic_get(dlq)
        if method is not None:
            channel.basic_ack(method.delivery_tag)
            if body == marker:
                found = True
                break
        else:
            time.sleep(0.2)
    connection.close()
    print(json.dumps({"deliveries": deliveries, "dead_lettered": found}))


def main() -> None:
    command, *args = sys.argv[1:]
    if command == "login":
        login(*args)
    elif command == "declare":
        declare(args[0])
    elif command == "publish":
        publish(args[0], int(args[1]))
    elif command == "consume":
        consume(args[0])
    elif command == "dead-letter":
        dead_letter(args[0], args[1])
    else:
        sys.exit(f"unknown command {command}")


if __name__ == "__main__":
    main()
