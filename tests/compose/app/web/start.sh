#!/bin/sh
# httpd in the foreground as a child, so that the shell (pid 1, which ignores an untrapped
# SIGTERM) can pass `docker stop`'s signal on and the container stops at once.
date +%s > /tmp/started
echo "web: serving on :8080 as $(hostname)"
httpd -f -p 8080 -h /www &
child=$!
trap 'kill $child; exit 0' TERM INT
wait $child
