#!/usr/bin/env bash
# Installs the Debian packages the production-shaped tests (tests/production) need, when missing:
# PostgreSQL (initdb/pg_ctl for a throwaway cluster) and redis-server. Needs root and apt-get.
# Exit 0: everything is there. Exit 2: cannot install; the last line of stderr says why (the test skips with it).
set -uo pipefail

missing=()
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
    echo "missing Debian packages ${missing[*]} and not root: install them with apt-get" >&2
    exit 2
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "missing packages ${missing[*]} and no apt-get on this machine" >&2
    exit 2
fi
export DEBIAN_FRONTEND=noninteractive
# The packages' own services are not wanted: the tests start private instances on free loopback ports.
if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}"; } >/tmp/tencent-ci-apt.log 2>&1; then
    echo "apt-get install ${missing[*]} failed: $(tail -n 1 /tmp/tencent-ci-apt.log)" >&2
    exit 2
fi
# Debian starts redis-server after install; the tests never use that instance, so stop it when it is running.
command -v service >/dev/null 2>&1 && service redis-server stop >/dev/null 2>&1
exit 0
