"""Creates or upgrades the guestbook schema. Runs as a Job before the workloads:
`python3 /app/migrate.py`. Idempotent; waits for the database to accept connections."""

import sys
import time

import psycopg2

import db

MIGRATIONS = [
    # 1: messages posted through the API, marked processed by the worker.
    """
    CREATE TABLE IF NOT EXISTS messages (
        id           BIGSERIAL PRIMARY KEY,
        author       TEXT NOT NULL DEFAULT 'anonymous',
        body         TEXT NOT NULL CHECK (length(body) BETWEEN 1 AND 2000),
        created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
        processed_at TIMESTAMPTZ
    );
    CREATE INDEX IF NOT EXISTS messages_unprocessed ON messages (id) WHERE processed_at IS NULL;
    """,
]


def wait_for_database(deadline_seconds):
    deadline = time.monotonic() + deadline_seconds
    while True:
        try:
            return db.connect()
        except psycopg2.OperationalError as err:
            if time.monotonic() > deadline:
                raise
            print(f"database not ready yet ({str(err).strip()}); retrying", flush=True)
            time.sleep(1)


def main():
    conn = wait_for_database(float(sys.argv[1]) if len(sys.argv) > 1 else 120)
    with conn:
        with conn.cursor() as cur:
            cur.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version INT PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())")
            # One migrator at a time, even if the Job is retried while a previous pod still runs.
            cur.execute("SELECT pg_advisory_xact_lock(4242)")
            cur.execute("SELECT COALESCE(MAX(version), 0) FROM schema_migrations")
            current = cur.fetchone()[0]
            for version, sql in enumerate(MIGRATIONS, start=1):
                if version > current:
                    cur.execute(sql)
                    cur.execute("INSERT INTO schema_migrations (version) VALUES (%s)", (version,))
                    print(f"applied migration {version}", flush=True)
    conn.close()
    print(f"schema is at version {len(MIGRATIONS)}", flush=True)


if __name__ == "__main__":
    main()
