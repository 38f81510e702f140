"""Guestbook worker: marks new messages as processed, in batches, and serves its health on
$HEALTH_PORT (8081): /healthz (ready: 200 while the last round reached the database recently)
and /livez (alive: 200 while the work loop runs, whatever the database does)."""

import json
import os
import signal
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import psycopg2

INTERVAL = float(os.environ.get("POLL_INTERVAL_SECONDS", "1"))
BATCH = int(os.environ.get("BATCH_SIZE", "100"))
stopping = threading.Event()
state = {"last_ok": 0.0, "last_error": None, "processed": 0}


def connect():
    return psycopg2.connect(
        host=os.environ.get("DATABASE_HOST", "localhost"),
        port=int(os.environ.get("DATABASE_PORT", "5432")),
        dbname=os.environ.get("DATABASE_NAME", "guestbook"),
        user=os.environ.get("DATABASE_USER", "guestbook"),
        password=os.environ.get("DATABASE_PASSWORD", ""),
        connect_timeout=3,
        application_name="guestbook-worker",
    )


def process_batch(conn):
    """Marks up to BATCH unprocessed messages; SKIP LOCKED lets several replicas share the work."""
    with conn, conn.cursor() as cur:
        cur.execute(
            "UPDATE messages SET processed_at = now() WHERE id IN ("
            " SELECT id FROM messages WHERE processed_at IS NULL ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED"
            ") RETURNING id",
            (BATCH,),
        )
        return len(cur.fetchall())


def work():
    conn = None
    while not stopping.is_set():
        try:
            if conn is None or conn.closed:
                conn = connect()
            done = process_batch(conn)
            state["processed"] += done
            state["last_ok"] = time.monotonic()
            state["last_error"] = None
            if done:
                print(f"processed {done} message(s)", flush=True)
                continue
        except psycopg2.Error as err:
            state["last_error"] = str(err).strip()
            print(f"database error: {state['last_error']}", flush=True)
            if conn is not None:
                conn.close()
            conn = None
        stopping.wait(INTERVAL)
    if conn is not None:
        conn.close()


# The work loop runs on its own thread so that liveness can tell whether it still runs.
worker = threading.Thread(target=work, name="work", daemon=True)


class Health(BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/livez":
            alive = worker.is_alive()
            return self.reply(200 if alive else 503, {"status": "alive" if alive else "work loop ended"})
        if self.path != "/healthz":
            return self.reply(404, {"error": "not found"})
        fresh = time.monotonic() - state["last_ok"] < max(10.0, 5 * INTERVAL)
        status = 200 if fresh else 503
        self.reply(status, {"status": "ok" if fresh else "stale", "processed": state["processed"], "error": state["last_error"]})

    def reply(self, status, value):
        data = json.dumps(value).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *_args):
        pass


def main():
    port = int(os.environ.get("HEALTH_PORT", "8081"))
    server = ThreadingHTTPServer(("0.0.0.0", port), Health)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()

    def stop(signum, _frame):
        print(f"signal {signum}: finishing the current batch", flush=True)
        stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"guestbook worker polling every {INTERVAL}s, health on :{port}", flush=True)
    worker.start()
    worker.join()
    server.shutdown()


if __name__ == "__main__":
    main()
