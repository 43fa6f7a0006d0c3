#!/usr/bin/env bash
# The gateway DNS proxy against aardvark-dns, side by side in one run
# (docs/benchmarks.md, "DNS"). Needs root, dnsperf, aardvark-dns and
# dnsmasq-base (Debian), and a built workspace (cargo build --release).
#
# World (all namespaces made here, removed on exit):
#   out:  dnsmasq 198.51.100.1:53, the upstream, zone test.
#   host: hostnetd --resolv-conf (upstream = out), proxy on 10.88.0.1;
#         aardvark-dns on 10.55.0.1 (an address on the host's lo), its
#         resolv.conf bind-mounted to the same upstream
#   ctr:  a container of network nat (hostnetd's), where dnsperf runs
# Each server gets QUERIES queries for a local name (web) and for a cached
# upstream name (www.test), dnsperf -c 4 -q 64; latencies from dnsperf -v.
set -euo pipefail
TARGET=${CARGO_TARGET_DIR:-target}/release
QUERIES=${QUERIES:-100000}
AARDVARK=${AARDVARK:-/usr/lib/podman/aardvark-dns}
P=hnt-$$-bench
HOST=$P-host OUT=$P-out
DIR=$(mktemp -d /tmp/$P.XXXX)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
    # aardvark-dns forks into the background: kill whatever still runs in
    # the bench's namespaces, not just the processes started here.
    for ns in "$HOST" "$OUT"; do
        ip netns pids "$ns" 2>/dev/null | xargs -r kill -9 2>/dev/null || true
    done
    wait 2>/dev/null || true
    grep " $DIR/" /proc/self/mountinfo | awk '{print $5}' | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
    ip netns del "$HOST" 2>/dev/null || true
    ip netns del "$OUT" 2>/dev/null || true
    rm -rf "$DIR"
}
trap cleanup EXIT

ip netns add "$HOST"; ip netns add "$OUT"
ip -n "$HOST" link set lo up; ip -n "$OUT" link set lo up
ip -n "$HOST" link add up0 type veth peer name up0 netns "$OUT"
ip -n "$HOST" addr add 198.51.100.2/24 dev up0; ip -n "$HOST" link set up0 up
ip -n "$OUT" addr add 198.51.100.1/24 dev up0; ip -n "$OUT" link set up0 up
ip -n "$HOST" route add default via 198.51.100.1
ip -n "$HOST" addr add 10.55.0.1/32 dev lo

echo "192.0.2.80 www.test" > "$DIR/hosts"
ip netns exec "$OUT" dnsmasq --no-daemon --conf-file=/dev/null --port=53 --bind-interfaces \
    --listen-address=198.51.100.1 --no-resolv --no-hosts --user=root --group=root \
    --log-queries --local=/test/ --local-ttl=3600 --addn-hosts="$DIR/hosts" --log-facility=- 2>"$DIR/dnsmasq.log" &
PIDS+=($!)
echo "nameserver 198.51.100.1" > "$DIR/resolv.conf"

nsenter --net=/run/netns/"$HOST" "$TARGET/hostnetd" --socket "$DIR/hostnet.sock" \
    --state-dir "$DIR/state" --default-subnet 10.88.0.0/16 --resolv-conf "$DIR/resolv.conf" \
    2>"$DIR/hostnetd.log" &
PIDS+=($!)
for _ in $(seq 100); do [ -S "$DIR/hostnet.sock" ] && break; sleep 0.1; done
H() { "$TARGET/hostnet" --socket "$DIR/hostnet.sock" "$@"; }
H namespace create --name web >/dev/null
H endpoint create --network nat --name web >/dev/null
H namespace attach web web
H namespace create --name client >/dev/null
H endpoint create --network nat --name client >/dev/null
H namespace attach client client
ip_of() { H endpoint inspect "$1" | sed -n 's/.*"IpAddress": *"\([0-9.]*\)".*/\1/p' | head -1; }
WEB=$(ip_of web) CLIENT=$(ip_of client)
NETNS=$(H namespace inspect client | sed -n 's/.*"NetNsPath": *"\([^"]*\)".*/\1/p')

mkdir -p "$DIR/aardvark"
printf '10.55.0.1\n%s %s  web\n%s %s  client\n' \
    0000000000000000000000000000000000000000000000000000000000000001 "$WEB" \
    0000000000000000000000000000000000000000000000000000000000000002 "$CLIENT" > "$DIR/aardvark/nat"
unshare -m sh -c "mount --bind '$DIR/resolv.conf' /etc/resolv.conf && \
    exec nsenter --net=/run/netns/$HOST $AARDVARK --config '$DIR/aardvark' -p 53 run" \
    >"$DIR/aardvark.log" 2>&1 &
PIDS+=($!)
sleep 1

echo "web A" > "$DIR/local.q"
echo "www.test A" > "$DIR/upstream.q"
run() { # server queries-file label
    nsenter --net="$NETNS" dnsperf -s "$1" -d "$2" -n "$QUERIES" -c 4 -q 64 -t 2 -v \
        > "$DIR/out" 2>&1 || true
    local sent lost qps p50 p99
    sent=$(sed -n 's/ *Queries sent: *\([0-9]*\).*/\1/p' "$DIR/out")
    lost=$(sed -n 's/ *Queries lost: *\([0-9]*\).*/\1/p' "$DIR/out")
    qps=$(sed -n 's/ *Queries per second: *\([0-9.]*\).*/\1/p' "$DIR/out")
    read -r p50 p99 < <(awk '$1==">" {print $NF}' "$DIR/out" | sort -g |
        awk '{v[NR]=$1} END {printf "%.3f %.3f\n", v[int(NR*0.5)]*1000, v[int(NR*0.99)]*1000}')
    local bad
    bad=$(awk '$1==">" && $2!="NOERROR"' "$DIR/out" | wc -l)
    printf '| %-28s | %8s | %6s | %4s | %9s | %7s | %7s |\n' "$3" "$sent" "$lost" "$bad" "$qps" "$p50" "$p99"
}
# Warm both caches with one query each.
nsenter --net="$NETNS" dnsperf -s 10.88.0.1 -d "$DIR/upstream.q" -n 1 >/dev/null 2>&1 || true
nsenter --net="$NETNS" dnsperf -s 10.55.0.1 -d "$DIR/upstream.q" -n 1 >/dev/null 2>&1 || true
echo "| server, name                 |  queries |   lost | !NOERROR |       qps | p50 ms  | p99 ms  |"
echo "|---|---|---|---|---|---|---|"
for round in 1 2; do
    run 10.88.0.1 "$DIR/local.q" "hostnet proxy, local (web)"
    run 10.55.0.1 "$DIR/local.q" "aardvark-dns, local (web)"
    run 10.88.0.1 "$DIR/upstream.q" "hostnet proxy, cached www.test"
    run 10.55.0.1 "$DIR/upstream.q" "aardvark-dns, www.test"
done
echo "upstream queries seen by dnsmasq: $(grep -c 'query\[' "$DIR/dnsmasq.log" 2>/dev/null || echo '?')"
