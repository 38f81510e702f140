# `on_change` of the API under `samestack dev`, after synced files landed in /app: asks the
# server (PID 1) to load the new code and waits until it has, so the latency samestack reports
# ends when the new code serves. Exits 1 with the server's traceback when the code does not load.
request=/tmp/guestbook-reload failed=/tmp/guestbook-reload.failed
rm -f "$failed"
: >"$request" || exit 1
kill -HUP 1 || exit 1
i=0
while [ -e "$request" ]; do
  i=$((i + 1))
  if [ "$i" -gt 1000 ]; then
    rm -f "$request"
    echo "the API did not acknowledge the reload within 10 s (is PID 1 the guestbook API?)" >&2
    exit 1
  fi
  sleep 0.01
done
if [ -e "$failed" ]; then
  cat "$failed" >&2
  exit 1
fi
