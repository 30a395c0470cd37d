package mesh

import "strings"

// IsHTTPPortName reports whether a port name selects HTTP under Istio's
// explicit protocol selection: "<protocol>[-<suffix>]" with protocol http,
// http2 or grpc (grpc-web too). The node proxy parses requests on such
// ports, so a denial is an HTTP 403 rather than a closed connection.
func IsHTTPPortName(name string) bool {
	proto, _, _ := strings.Cut(strings.ToLower(name), "-")
	switch proto {
	case "http", "http2", "grpc":
		return true
	}
	return false
}
