#!/usr/bin/env bash
# Installs the peers bench/posture compares Rampart with, into $GOPATH/bin
# (or $GOBIN), where the benchmark looks for them besides PATH:
#
#   kube-score  github.com/zegl/kube-score          (seconds)
#   trivy       github.com/aquasecurity/trivy v0.74.0 (about 10 minutes on
#               two cores; Trivy needs GOEXPERIMENT=jsonv2 to build)
#
# Usage: bench/posture/install-peers.sh [kube-score] [trivy]   (default both)
# Trivy then runs offline on its embedded checks (trivy config
# --skip-check-update); nothing is downloaded at benchmark time.
set -euo pipefail
command -v go >/dev/null || export PATH="$PATH:/usr/local/go/bin"

peers=("$@")
[ ${#peers[@]} -gt 0 ] || peers=(kube-score trivy)
for p in "${peers[@]}"; do
	case "$p" in
	kube-score)
		echo "installing kube-score" >&2
		go install github.com/zegl/kube-score/cmd/kube-score@latest
		;;
	trivy)
		echo "installing trivy v0.74.0 (about 10 minutes)" >&2
		GOEXPERIMENT=jsonv2 go install github.com/aquasecurity/trivy/cmd/trivy@v0.74.0
		;;
	*)
		echo "install-peers.sh: unknown peer $p (want kube-score or trivy)" >&2
		exit 2
		;;
	esac
done
gobin="$(go env GOBIN)"
echo "installed into ${gobin:-$(go env GOPATH)/bin}" >&2
