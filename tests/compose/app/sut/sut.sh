#!/bin/sh
# End-to-end test of the stack in docker-compose.test.yml, run as its `sut` service once `web`
# is healthy (which needs `worker` healthy). Prints one TAP-like
# line per check and exits 0 when every check passed, 1 otherwise.
#
# busybox's static wget cannot resolve names, so addresses come from nslookup (the engine's
# embedded DNS) and every fetch goes to an address, under `timeout`.

failed=0
pass() { echo "ok - $1"; }
fail() { echo "not ok - $1"; failed=1; }

# The first IPv4 address nslookup gives for a name ("" when it does not resolve).
resolve() {
    nslookup "$1" 2>/dev/null | awk '
        /^Name:/ { found = 1; next }
        found && /Address/ {
            for (i = 2; i <= NF; i++) if ($i ~ /^[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+$/) { print $i; exit }
        }'
}

fetch() { timeout 5 wget -q -O - "$1" 2>/dev/null; }

# --- DNS by service name, network alias, and nothing else ------------------------------------
web_ip=$(resolve web)
[ -n "$web_ip" ] && pass "web resolves by service name ($web_ip)" || fail "web resolves by service name"
alias_ip=$(resolve frontend)
[ -n "$alias_ip" ] && [ "$alias_ip" = "$web_ip" ] && pass "the network alias frontend is web" \
    || fail "the network alias frontend is web (got '$alias_ip')"
worker_ip=$(resolve worker)
[ -n "$worker_ip" ] && [ "$worker_ip" != "$web_ip" ] && pass "worker resolves ($worker_ip)" || fail "worker resolves"
[ -z "$(resolve no-such-service)" ] && pass "an unknown name does not resolve" || fail "an unknown name does not resolve"

# --- HTTP to the service, and through the published port -------------------------------------
hello=$(fetch "http://$web_ip:8080/cgi-bin/hello")
case "$hello" in
    "hello from web "*) pass "web answers on its address: $hello" ;;
    *) fail "web answers on its address (got '$hello')" ;;
esac
gateway=$(ip route | awk '/^default/ { print $3; exit }')
published=$(fetch "http://$gateway:$WEB_PORT/cgi-bin/hello")
[ -n "$published" ] && [ "$published" = "$hello" ] && pass "the published port $WEB_PORT reaches web (via $gateway)" \
    || fail "the published port $WEB_PORT reaches web via $gateway (got '$published')"

# --- the named volume, shared by worker (rw), web and sut (ro) -------------------------------
mine=$(cat /data/worker.txt 2>/dev/null)
theirs=$(fetch "http://$web_ip:8080/cgi-bin/data")
case "$mine" in
    "tick "*" from "*) pass "sut reads the worker's output in the volume: $mine" ;;
    *) fail "sut reads the worker's output in the volume (got '$mine')" ;;
esac
[ "${theirs%% from *}" != "$theirs" ] && [ "${theirs#* from }" != "" ] && \
    [ "$(echo "$theirs" | awk '{ print $4 }')" = "$(echo "$mine" | awk '{ print $4 }')" ] \
    && pass "web reads the same worker's output: $theirs" || fail "web reads the same worker's output (got '$theirs')"
if touch /data/sut-was-here 2>/dev/null; then fail "the volume is read-only for sut"; else pass "the volume is read-only for sut"; fi

# --- health ordering ---------------------------------------------------------------------------
worker_started=$(cat /data/worker.started 2>/dev/null)
web_started=$(fetch "http://$web_ip:8080/cgi-bin/started")
[ -n "$worker_started" ] && [ -n "$web_started" ] && [ "$worker_started" -le "$web_started" ] \
    && pass "web started after worker (worker $worker_started, web $web_started)" \
    || fail "web started after worker (worker '$worker_started', web '$web_started')"
health=$(fetch "http://$web_ip:8080/cgi-bin/health")
[ "$health" = "ok" ] && pass "web is up when sut starts" || fail "web is up when sut starts (got '$health')"

# --- the env file --------------------------------------------------------------------------------
[ "$GREETING" = "hello from the env file" ] && pass "env_file sets GREETING" || fail "env_file sets GREETING (got '$GREETING')"

if [ "$failed" -ne 0 ]; then
    echo "sut: FAILED"
    exit 1
fi
echo "sut: all checks passed"
