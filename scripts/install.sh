#!/usr/bin/env bash
# Installs everything ssm-proxy's demo and tests need on a fresh Debian/Ubuntu
# machine: OpenSSH and rsync (system packages), then the npm dependencies and
# the bundle.
set -euo pipefail
cd "$(dirname "$0")/.."
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq openssh-server openssh-client rsync openssl
npm ci --no-audit --no-fund
npm run build
