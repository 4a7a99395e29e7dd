#!/bin/sh
# Starts logrouter on a Docker host, for the containers that log with the fluentd driver
# (daemon.json). Run it from this directory, before restarting dockerd with daemon.json.
# IMAGE defaults to the image built by `docker build -f docker/Dockerfile -t logrouter .`.
#
# --log-driver local: the router's own log must not go through the fluentd driver it serves
#   (daemon.json makes fluentd the default), or its log lines would loop back into it.
# --volume /var/run/logrouter:/var/run: the router creates /var/run/fluent.sock in its
#   container, which is /var/run/logrouter/fluent.sock on the host, the address in daemon.json.
#   Only this directory is shared: sharing the host's /var/run would also hand the container
#   docker.sock. FireLens mounts the socket directory of a task the same way.
# --stop-timeout 30: as long as Grace in fluent-bit.conf.
set -eu
IMAGE=${IMAGE:-logrouter:latest}
exec docker run --detach --name logrouter --restart unless-stopped \
    --log-driver local \
    --stop-timeout 30 \
    --volume /var/run/logrouter:/var/run \
    --volume "$PWD/fluent-bit.conf:/fluent-bit/etc/fluent-bit.conf:ro" \
    "$IMAGE"
