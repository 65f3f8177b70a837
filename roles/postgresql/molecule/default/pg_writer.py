#!/usr/bin/python3
"""Commit numbered rows to the app database and log each commit the server acknowledged.

pg-writer RUN SECONDS: inserts (run, n) into writes, one transaction each, over TLS as the
runtime role, to whichever listed host takes writes (target_session_attrs=read-write), and
reconnects after an error. Each acknowledged commit is a line "n unix-time host" in
/var/tmp/pg-writer-RUN.log (and pg-writer-RUN.done at the end); the tests compare it with what
the database holds afterwards.
The password comes from PGPASSWORD, the hosts from PGHOSTS.
"""

import os
import sys
import time
from pathlib import Path

import psycopg2

run, seconds = sys.argv[1], float(sys.argv[2])
dsn = (
    f"host={os.environ['PGHOSTS']} dbname=app user=app sslmode=verify-full "
    "sslrootcert=/etc/ssl/postgresql-client/ca.crt target_session_attrs=read-write connect_timeout=2"
)
deadline = time.monotonic() + seconds
n, connection = 0, None
with Path(f"/var/tmp/pg-writer-{run}.log").open("w", buffering=1) as log:
    while time.monotonic() < deadline:
        try:
            if connection is None:
                connection = psycopg2.connect(dsn)
            with connection, connection.cursor() as cursor:
                cursor.execute("INSERT INTO writes (run, n) VALUES (%s, %s)", (run, n + 1))
            n += 1
            log.write(f"{n} {time.time():.3f} {connection.info.host}\n")
            time.sleep(0.01)
        except psycopg2.Error:
            connection = None
            time.sleep(0.1)
Path(f"/var/tmp/pg-writer-{run}.done").touch()
