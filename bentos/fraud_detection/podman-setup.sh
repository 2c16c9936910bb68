#!/usr/bin/env bash
# Podman set-up for `evergreen bento containerize` on a machine without a Docker engine or Docker
# Hub (../shared/reference/containers.md), as root. Idempotent; what it makes is cached by its
# inputs under $EVERGREEN_CONTAINER_CACHE (default /var/tmp/evergreen-containers). Afterwards:
#   eval "$(evergreen bento prepare)"   # prints the two settings below; quick when cached
#   evergreen bento build               # a bento that installs from those wheels, offline
#   evergreen bento containerize        # fraud_detection:<version>, built with podman
#   evergreen deploy fraud_detection:<version> --target container
set -euo pipefail
PROJECT=$(cd "$(dirname "$0")/../.." && pwd)
make -C "$PROJECT" --no-print-directory podman   # Debian's podman, runc, no container rlimits
"$PROJECT/.venv/bin/evergreen" bento prepare
