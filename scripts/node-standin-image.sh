#!/usr/bin/env bash
# Makes docker.io/library/node:20-slim available to podman for `podman build --pull=never`:
# a real pull first; where no registry image can be pulled, a stand-in built from Debian bookworm
# (debootstrap --variant=minbase) with this machine's Node.js and npm, a `node` user (uid 1000) and
# this machine's extra CA bundle (NODE_EXTRA_CA_CERTS) in its environment, since registry traffic
# may be TLS-intercepted. The debootstrapped root file system is cached in
# ${EXPEED_IMAGE_CACHE:-$HOME/.cache/expeed-sync} and reused while it exists. Runs of this script
# at the same time take turns (flock on the cache folder), so one of them makes the stand-in.
# The pull gives up after ${NODE_IMAGE_PULL_TIMEOUT:-30} seconds.
set -euo pipefail
IMAGE=docker.io/library/node:20-slim
CACHE="${EXPEED_IMAGE_CACHE:-${HOME:-/tmp}/.cache/expeed-sync}"
say() { printf 'node-standin: %s\n' "$*" >&2; }

mkdir -p "$CACHE"
exec 9>"$CACHE/node-standin.lock"
flock 9
if podman image exists "$IMAGE"; then say "$IMAGE is present"; exit 0; fi
if timeout "${NODE_IMAGE_PULL_TIMEOUT:-30}" podman pull -q "$IMAGE" >/dev/null 2>&1; then say "pulled $IMAGE"; exit 0; fi
say "cannot pull $IMAGE; building a stand-in from Debian bookworm"

base="$CACHE/bookworm-minbase.tar"
if [ ! -s "$base" ]; then
  tmp="$(mktemp -d)"
  debootstrap --variant=minbase bookworm "$tmp/rootfs" http://deb.debian.org/debian >"$CACHE/debootstrap.log" 2>&1 \
    || { say "debootstrap failed; see $CACHE/debootstrap.log"; tail -20 "$CACHE/debootstrap.log" >&2; rm -rf "$tmp"; exit 1; }
  tar -C "$tmp/rootfs" -cf "$base.part" . && mv "$base.part" "$base"
  rm -rf "$tmp"
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/rootfs"
tar -C "$work/rootfs" -xf "$base"
node_bin="$(readlink -f "$(command -v node)")"
npm_dir="$(dirname "$(dirname "$(readlink -f "$(command -v npm)")")")"
install -D -m 0755 "$node_bin" "$work/rootfs/usr/local/bin/node"
mkdir -p "$work/rootfs/usr/local/lib/node_modules"
cp -a "$npm_dir" "$work/rootfs/usr/local/lib/node_modules/npm"
ln -sf ../lib/node_modules/npm/bin/npm-cli.js "$work/rootfs/usr/local/bin/npm"
ln -sf ../lib/node_modules/npm/bin/npx-cli.js "$work/rootfs/usr/local/bin/npx"
ca="${NODE_EXTRA_CA_CERTS:-/etc/ssl/certs/ca-certificates.crt}"
install -D -m 0644 "$ca" "$work/rootfs/usr/local/share/ca-certificates/host-extra.pem"
grep -q '^node:' "$work/rootfs/etc/group" || echo 'node:x:1000:' >>"$work/rootfs/etc/group"
grep -q '^node:' "$work/rootfs/etc/passwd" || echo 'node:x:1000:1000::/home/node:/bin/sh' >>"$work/rootfs/etc/passwd"
mkdir -p "$work/rootfs/home/node" && chown 1000:1000 "$work/rootfs/home/node"

tar -C "$work/rootfs" -c . | podman import -q \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV NODE_EXTRA_CA_CERTS=/usr/local/share/ca-certificates/host-extra.pem' \
  --change 'CMD ["node"]' - "$IMAGE" >/dev/null
say "imported the stand-in as $IMAGE (node $(node --version), npm $(npm --version))"
