package proxy

// Unexported parsers of untrusted bytes, exported to the external test
// package for table and fuzz tests.
var (
	ParseAuthority = parseAuthority
	PrincipalOf    = principalOf
	ServerTLS      = serverTLS
	ClientTLS      = clientTLS
)

// HTTPAnswer exposes Decision.httpAnswer.
func HTTPAnswer(d Decision) (int, string) { return d.httpAnswer() }

// Validate exposes Workload.validate.
func Validate(w Workload) error { return w.validate() }
