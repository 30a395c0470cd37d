#!/usr/bin/env bash
# Installs the Debian packages Rampart's tests and code generation need.
# Idempotent; needs root.
set -euo pipefail

pkgs=(
	clang llvm libbpf-dev linux-libc-dev # bpf2go regeneration of bpf/datapath.c
	iproute2                             # network namespaces and veths in datapath tests
	iperf3 iptables                      # bench/datapath (the full run; its test needs neither)
	openssl curl util-linux              # hack/kube-testenv.sh (certificates, readiness, setsid, flock)
	git ca-certificates
)
missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	echo "installing: ${missing[*]}" >&2
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
