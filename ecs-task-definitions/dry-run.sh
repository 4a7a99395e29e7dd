#!/usr/bin/env bash
# Checks an example's config as the log router container will read it, without Docker.
#
#     ecs-task-definitions/dry-run.sh DIR [PATH_IN_CONTAINER]
#
# Lays out the container's filesystem in a temp dir: the files docker/Dockerfile copies into the
# image, the files DIR/Dockerfile adds on top, and DIR/generated/fluent-bit.conf (what FireLens
# writes) or DIR/fluent-bit.conf (what you mount) at /fluent-bit/etc/fluent-bit.conf. Absolute
# paths in @INCLUDE and Parsers_File lines are pointed into that dir, every ${VAR} the files use
# gets a dummy value unless it is set, and `logrouter --dry-run` loads PATH_IN_CONTAINER
# (default /fluent-bit/etc/fluent-bit.conf). The binary is $LOGROUTER, else
# target/release/logrouter.
set -euo pipefail

example=$(cd "${1:?usage: $0 DIR [PATH_IN_CONTAINER]}" && pwd)
main=${2:-/fluent-bit/etc/fluent-bit.conf}
repo=$(cd "$(dirname "$0")/.." && pwd)
bin=${LOGROUTER:-$repo/target/release/logrouter}

root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT

# COPY lines of a Dockerfile's last stage that copy from the build context: "SRC DEST" a line.
copies() {
    awk 'toupper($1) == "FROM" { out = "" }
         toupper($1) == "COPY" && $0 !~ /--from/ { out = out $2 " " $3 "\n" }
         END { printf "%s", out }' "$1"
}

# copy_image DOCKERFILE CONTEXT
copy_image() {
    local src dest
    while read -r src dest; do
        mkdir -p "$root$(dirname "$dest")"
        cp "$2/$src" "$root$dest"
    done < <(copies "$1")
}

copy_image "$repo/docker/Dockerfile" "$repo"
if [[ -f $example/Dockerfile ]]; then
    copy_image "$example/Dockerfile" "$example"
fi
if [[ -f $example/generated/fluent-bit.conf ]]; then
    cp "$example/generated/fluent-bit.conf" "$root/fluent-bit/etc/fluent-bit.conf"
elif [[ -f $example/fluent-bit.conf ]]; then
    cp "$example/fluent-bit.conf" "$root/fluent-bit/etc/fluent-bit.conf"
fi

confs=$(find "$root" -name '*.conf')
# shellcheck disable=SC2086
sed -i -E "s#^([[:space:]]*(@INCLUDE|Parsers_File)[[:space:]]+)/#\\1$root/#I" $confs
# shellcheck disable=SC2086
for var in $(grep -ho '\${[A-Za-z_][A-Za-z0-9_]*}' $confs | tr -d '${}' | sort -u); do
    if [[ -z ${!var:-} ]]; then
        export "$var=dry-run-placeholder"
    fi
done

"$bin" --dry-run -c "$root$main"
