#!/bin/bash
# Same contract as the upstream postgres:15 image: POSTGRES_PASSWORD / POSTGRES_USER / POSTGRES_DB,
# initdb on first start into PGDATA, listen on 5432, run as uid 999. Writes only to PGDATA,
# /var/run/postgresql and /tmp, so a read-only root filesystem works.
set -Eeuo pipefail

PGBIN=/usr/lib/postgresql/15/bin
: "${PGDATA:=/var/lib/postgresql/data}"
: "${POSTGRES_USER:=postgres}"
: "${POSTGRES_DB:=$POSTGRES_USER}"
export PGDATA

if [ "${1:-postgres}" != postgres ]; then
	exec "$@"
fi
shift || true

# Started as root (plain `docker run`): fix ownership of the writable paths, then drop to 999.
if [ "$(id -u)" = 0 ]; then
	mkdir -p "$PGDATA" /var/run/postgresql
	chown -R 999:999 "$PGDATA" /var/run/postgresql
	chmod 700 "$PGDATA"
	exec setpriv --reuid=999 --regid=999 --init-groups "$0" postgres "$@"
fi

if [ ! -s "$PGDATA/PG_VERSION" ]; then
	if [ -z "${POSTGRES_PASSWORD:-}" ] && [ "${POSTGRES_HOST_AUTH_METHOD:-}" != trust ]; then
		echo "error: database is uninitialized and POSTGRES_PASSWORD is not set" >&2
		echo "  set POSTGRES_PASSWORD to a non-empty value (or POSTGRES_HOST_AUTH_METHOD=trust for tests)" >&2
		exit 1
	fi
	mkdir -p "$PGDATA"
	if [ ! -O "$PGDATA" ]; then
		# PostgreSQL must own its data directory; a volume root owned by root (Kubernetes
		# emptyDir/PVC with fsGroup) cannot be handed over without privileges.
		echo "error: PGDATA ($PGDATA) is owned by uid $(stat -c %u "$PGDATA"), not $(id -u)" >&2
		echo "  point PGDATA at a subdirectory of the volume, e.g. PGDATA=$PGDATA/pgdata" >&2
		exit 1
	fi
	chmod 700 "$PGDATA"
	pwfile="$(mktemp /tmp/pwfile.XXXXXX)"
	trap 'rm -f "$pwfile"' EXIT
	printf '%s\n' "${POSTGRES_PASSWORD:-}" >"$pwfile"
	"$PGBIN/initdb" --username="$POSTGRES_USER" --pwfile="$pwfile" --encoding=UTF8 --locale=C.UTF-8 \
		--auth-local=trust --auth-host=scram-sha-256 ${POSTGRES_INITDB_ARGS:-} >/dev/null
	rm -f "$pwfile"
	trap - EXIT
	auth="${POSTGRES_HOST_AUTH_METHOD:-scram-sha-256}"
	printf '\nhost all all all %s\n' "$auth" >>"$PGDATA/pg_hba.conf"
	printf "\nlisten_addresses = '*'\n" >>"$PGDATA/postgresql.conf"
	if [ "$POSTGRES_DB" != postgres ]; then
		# Single-user mode: no temporary server, no socket, nothing to wait for.
		printf 'CREATE DATABASE "%s";\n' "${POSTGRES_DB//\"/\"\"}" |
			"$PGBIN/postgres" --single -j -D "$PGDATA" postgres >/dev/null
	fi
	echo "PostgreSQL init process complete; ready for start up."
fi

exec "$PGBIN/postgres" -D "$PGDATA" "$@"
