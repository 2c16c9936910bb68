#!/usr/bin/env bash
# Podman set-up for `evergreen bento containerize` on a machine without a Docker engine or Docker
# Hub (../shared/reference/containers.md), as root. Idempotent. Afterwards:
#   export EVERGREEN_CONTAINER_BASE_IMAGE=localhost/python311:bookworm
#   export EVERGREEN_CONTAINER_WHEELS_DIR=$WORK/wheels
#   evergreen bento build        # a bento that installs from those wheels, offline
#   evergreen bento containerize --backend podman --opt network=host \
#       --opt volume=$WORK/wheels:$WORK/wheels:ro
#   podman run -d --user 0 -p 127.0.0.1:8081:3000 -v $EVERGREEN_HOME:$EVERGREEN_HOME \
#       -e EVERGREEN_HOME=$EVERGREEN_HOME fraud_detection:<version>
# (--user 0: the image's user cannot write the home's SQLite online store, which WAL needs.)
set -euo pipefail
WORK=${1:-/var/tmp/evergreen-containers}
PROJECT=$(cd "$(dirname "$0")/../.." && pwd)
MIRROR=${MIRROR:-http://deb.debian.org/debian}
mkdir -p "$WORK/wheels"

command -v podman >/dev/null || {
    apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y podman buildah runc debootstrap
}
# crun fails here (cgroups in hybrid mode) and containers may not set rlimits.
cat > /etc/containers/containers.conf <<'CONF'
[containers]
default_ulimits = []
[engine]
runtime = "runc"
CONF

if ! podman image exists localhost/debian-base:bookworm; then
    rm -rf "$WORK/rootfs"
    debootstrap --variant=minbase bookworm "$WORK/rootfs" "$MIRROR"
    tar -C "$WORK/rootfs" -c . | podman import - localhost/debian-base:bookworm
fi
if ! podman image exists localhost/python311:bookworm; then
    # BentoML's Dockerfile installs uv with pip unless the image has it: pip cannot reach PyPI
    # from inside a build here, so the base image carries the project's own uv binary.
    cp "$PROJECT/.venv/bin/uv" "$WORK/uv"
    cat > "$WORK/Containerfile" <<'FILE'
FROM localhost/debian-base:bookworm
RUN apt-get update && apt-get install -y --no-install-recommends python3.11 python3.11-venv \
    ca-certificates && rm -rf /var/lib/apt/lists/* && ln -sf /usr/bin/python3.11 /usr/local/bin/python
COPY uv /usr/local/bin/uv
FILE
    podman build --network host -t localhost/python311:bookworm -f "$WORK/Containerfile" "$WORK"
fi

# The serving closure pinned to requirements.lock, as wheels for the image's platform.
"$PROJECT/.venv/bin/python" -c "from evergreen.serving.bento import serving_requirements as r; \
print('\n'.join(r()))" > "$WORK/requirements.txt"
platforms=()
for tag in manylinux2014 manylinux_2_17 manylinux_2_24 manylinux_2_27 manylinux_2_28 \
    manylinux_2_31 manylinux_2_34 manylinux_2_35; do
    platforms+=(--platform "${tag}_x86_64")
done
"$PROJECT/.venv/bin/python" -m pip download --quiet --only-binary=:all: --python-version 3.11 \
    --implementation cp --abi cp311 --abi abi3 --abi none "${platforms[@]}" \
    -d "$WORK/wheels" -r "$WORK/requirements.txt"
echo "EVERGREEN_CONTAINER_BASE_IMAGE=localhost/python311:bookworm"
echo "EVERGREEN_CONTAINER_WHEELS_DIR=$WORK/wheels"
