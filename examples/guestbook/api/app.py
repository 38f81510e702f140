"""Guestbook API: GET /healthz (ready: the database answers), GET /livez (the process serves),
GET /messages, POST /messages (JSON {"author", "body"}).
Python standard library HTTP server plus psycopg2; listens on $PORT (8080)."""

import importlib
import importlib.util
import json
import os
import signal
import sys
import threading
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import psycopg2

import db

MAX_BODY = 16 * 1024
# `GET /` answers with this; edit it under `samestack dev` to see a hot reload.
GREETING = "hello from the guestbook api"
# The reload handshake with reload.sh (`on_change` under `samestack dev`): it creates the
# request file and sends SIGHUP; the server loads the new code, then removes the file (and
# leaves the failure in the second file when the new code does not load).
RELOAD_REQUEST = "/tmp/guestbook-reload"
RELOAD_FAILED = "/tmp/guestbook-reload.failed"


def row_to_json(row):
    id_, author, body, created_at, processed_at = row
    return {
        "id": id_,
        "author": author,
        "body": body,
        "created_at": created_at.isoformat(),
        "processed": processed_at is not None,
    }


class Handler(BaseHTTPRequestHandler):
    server_version = "guestbook-api/1"

    def do_GET(self):
        if self.path == "/":
            return self.send_json(200, {"greeting": GREETING})
        if self.path == "/healthz":
            return self.healthz()
        if self.path == "/livez":
            # Liveness: this process answers. Never the database: an outage must not restart pods.
            return self.send_json(200, {"status": "alive"})
        if self.path.split("?")[0] == "/messages":
            return self.list_messages()
        self.send_json(404, {"error": "not found"})

    def do_POST(self):
        if self.path != "/messages":
            return self.send_json(404, {"error": "not found"})
        length = int(self.headers.get("Content-Length") or 0)
        if length <= 0 or length > MAX_BODY:
            return self.send_json(400, {"error": f"send a JSON body of 1..{MAX_BODY} bytes"})
        try:
            payload = json.loads(self.rfile.read(length))
            body = str(payload["body"]).strip()
            author = str(payload.get("author") or "anonymous").strip()[:100]
        except (ValueError, KeyError, TypeError):
            return self.send_json(400, {"error": 'expected JSON {"author": "...", "body": "..."}'})
        if not body:
            return self.send_json(400, {"error": "body must not be empty"})
        try:
            conn = db.connect()
            try:
                with conn, conn.cursor() as cur:
                    cur.execute(
                        "INSERT INTO messages (author, body) VALUES (%s, %s) "
                        "RETURNING id, author, body, created_at, processed_at",
                        (author, body[:2000]),
                    )
                    row = cur.fetchone()
            finally:
                conn.close()
        except psycopg2.Error as err:
            return self.send_json(503, {"error": f"database: {str(err).strip()}"})
        self.send_json(201, row_to_json(row))

    def healthz(self):
        try:
            conn = db.connect()
            try:
                with conn.cursor() as cur:
                    cur.execute("SELECT 1")
                    cur.fetchone()
            finally:
                conn.close()
        except psycopg2.Error as err:
            return self.send_json(503, {"status": "database unavailable", "error": str(err).strip()})
        self.send_json(200, {"status": "ok"})

    def list_messages(self):
        try:
            conn = db.connect()
            try:
                with conn.cursor() as cur:
                    cur.execute(
                        "SELECT id, author, body, created_at, processed_at FROM messages ORDER BY id DESC LIMIT 100"
                    )
                    rows = cur.fetchall()
            finally:
                conn.close()
        except psycopg2.Error as err:
            return self.send_json(503, {"error": f"database: {str(err).strip()}"})
        self.send_json(200, [row_to_json(r) for r in rows])

    def send_json(self, status, value):
        data = json.dumps(value).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, fmt, *args):
        if self.path not in ("/healthz", "/livez"):
            sys.stdout.write("%s %s\n" % (self.address_string(), fmt % args))


def fresh_handler():
    """The request handler of the code on disk now: every module of this directory that the
    server imported is re-executed in place, then app.py itself as a new module."""
    here = os.path.dirname(os.path.abspath(__file__))
    importlib.invalidate_caches()
    for name, module in list(sys.modules.items()):
        path = getattr(module, "__file__", None)
        if name != "__main__" and path and os.path.dirname(os.path.abspath(path)) == here:
            importlib.reload(module)
    spec = importlib.util.spec_from_file_location("guestbook_api", os.path.join(here, "app.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.Handler


def main():
    port = int(os.environ.get("PORT", "8080"))
    server = ThreadingHTTPServer(("0.0.0.0", port), Handler)
    server.daemon_threads = True

    def stop(signum, _frame):
        # Finish in-flight requests, stop accepting new ones (the pod's preStop drains first).
        print(f"signal {signum}: shutting down", flush=True)
        threading.Thread(target=server.shutdown, daemon=True).start()

    def reload(signum, _frame):
        # `samestack dev` synced new code and ran reload.sh, which sent SIGHUP: this process
        # loads it and keeps serving on the same socket (same pod, no restart, no refused
        # connection). Requests in flight finish on the old code; the next ones get the new.
        # Code that does not load leaves the old code serving, and reload.sh reports why.
        try:
            server.RequestHandlerClass = fresh_handler()
            failure = None
            print(f"signal {signum}: reloaded the code", flush=True)
        except Exception:
            failure = traceback.format_exc()
            print(f"signal {signum}: the new code does not load, the old code serves on:\n{failure}", flush=True)
        try:
            if failure:
                with open(RELOAD_FAILED, "w") as f:
                    f.write(failure)
            os.remove(RELOAD_REQUEST)
        except OSError:
            pass  # a bare `kill -HUP` (no reload.sh waiting)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGHUP, reload)
    print(f"guestbook api listening on :{port}", flush=True)
    server.serve_forever()
    server.server_close()


if __name__ == "__main__":
    main()
