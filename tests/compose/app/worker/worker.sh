#!/bin/sh
# Writes a line into the shared volume every second; `docker stop` ends it at once (the shell
# is pid 1: without a trap it would ignore SIGTERM and be killed ten seconds later).
trap 'echo "worker: stopping"; exit 0' TERM INT
date +%s > /data/worker.started
i=0
while :; do
    i=$((i + 1))
    echo "tick $i from $(hostname)" > /data/worker.tmp
    mv /data/worker.tmp /data/worker.txt
    [ "$i" -eq 1 ] && echo "worker: first tick written"
    sleep 1
done
