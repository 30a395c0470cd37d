package posture

// init registers the built-in checks. Their order is their precedence when
// findings merge: Kubernetes' Pod Security Standards checks first (their
// IDs are the ones users meet in admission errors), then CIS, then
// Rampart's own.
func init() {
	for _, c := range pssChecks() {
		mustRegister(pssCheckFor(c))
	}
	mustRegister(rbacChecks()...)
	mustRegister(serviceAccountChecks()...)
	mustRegister(cisWorkloadChecks()...)
	mustRegister(rampartChecks()...)
}
