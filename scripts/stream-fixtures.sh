#!/usr/bin/env bash
# Prints the DUMP payloads (hex) of the streams the unit tests of node/src/persist/stream.rs use
# as fixtures, made by a real redis-server 7.0.15 with rdbcompression off (so the bytes depend
# only on the data and the clock: delivery and seen times are whatever the clock says, and the
# tests read them from the payload).
#
#   scripts/stream-fixtures.sh [/path/to/redis-server]
#
# The server runs on a free loopback port in its own temp dir and is stopped on exit.
set -euo pipefail
server=${1:-/usr/bin/redis-server}
cli=$(dirname "$server")/redis-cli
dir=$(mktemp -d)
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$server" --port "$port" --bind 127.0.0.1 --save '' --appendonly no --dir "$dir" \
    --rdbcompression no --stream-node-max-entries 3 --logfile "$dir/log" &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$dir"' EXIT
r() { "$cli" -p "$port" "$@"; }
for _ in $(seq 100); do r PING >/dev/null 2>&1 && break; sleep 0.05; done

# "s": three nodes, a deleted entry, SAMEFIELDS and own-field entries, integer and string
# values, two groups (one with an unknown read counter), a PEL split between two consumers,
# and a consumer with nothing pending.
r XADD s 1-1 a 1 b 2 >/dev/null
r XADD s 1-2 a 3 b 4 >/dev/null
r XADD s 2-0 c x >/dev/null
r XADD s 3-0 a 5 b 6 >/dev/null
r XADD s 5-7 a hello b -100000 >/dev/null
r XADD s 6-0 long "$(printf 'v%.0s' $(seq 70))" >/dev/null
r XADD s 7-0 a 1 >/dev/null
r XDEL s 1-2 >/dev/null
r XGROUP CREATE s g1 0 >/dev/null
r XGROUP CREATE s g0 '$' >/dev/null
r XSETID s 9-9 >/dev/null
r XREADGROUP GROUP g1 alice COUNT 2 STREAMS s '>' >/dev/null
r XREADGROUP GROUP g1 bob COUNT 1 STREAMS s '>' >/dev/null
r XGROUP CREATECONSUMER s g1 carol >/dev/null
r XGROUP CREATE s 42 2-0 ENTRIESREAD 2 >/dev/null
# "empty": a stream with no entries ever (XGROUP CREATE … MKSTREAM).
r XGROUP CREATE empty g '$' MKSTREAM >/dev/null
# "drained": entries added then all deleted.
r XADD drained 10-1 f v >/dev/null
r XDEL drained 10-1 >/dev/null

for key in s empty drained; do
    printf '%s ' "$key"
    r DUMP "$key" | head -c -1 | xxd -p | tr -d '\n'
    echo
done
