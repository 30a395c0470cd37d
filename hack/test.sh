#!/usr/bin/env bash
# Runs every Rampart test, the privileged eBPF and network-namespace tests
# and the real kube-apiserver tests included. Run it as root:
#
#	./hack/test.sh [go test flags...]   (as root)
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then
	echo "hack/test.sh: the datapath tests load eBPF programs and create network namespaces; run it as root" >&2
	exit 2
fi
# sudo resets PATH; Go lives in /usr/local/go on a Debian machine set up by
# the official tarball.
command -v go >/dev/null || export PATH="$PATH:/usr/local/go/bin"

hack/install-deps.sh
# Build kube-apiserver and etcd before the tests, so that a first build
# (about 10 minutes) is not charged to one test binary's timeout.
hack/kube-testenv.sh build

go test -count=1 "$@" ./...
