// Package mesh evaluates Istio's security policies in pure Go: who may call a
// workload (AuthorizationPolicy), which end-user tokens it accepts
// (RequestAuthentication) and whether it requires mutual TLS
// (PeerAuthentication).
//
// The node proxy and `rampart policy trace` share this package so that the
// answer a user reads in a trace is the answer the proxy enforces. An
// [Engine] is built once from decoded policy objects and is immutable: when
// policies change, build a new one and swap it in atomically (an
// atomic.Pointer[Engine] is enough), passing the same [JWKSCache] so that
// fetched keys survive the swap. [Engine.Workload] selects, once per
// workload, the policies that apply to it; the returned [WorkloadView]
// answers per connection and per request without allocating on the hot
// path.
//
// The semantics follow Istio's reference documentation and its Envoy
// configuration builder; docs/mesh-semantics.md lists them with links and
// names every place where Rampart differs on purpose.
package mesh
