// Package proxy is the node proxy of Rampart's mesh: one Proxy in the agent
// process serves every mesh workload on the node, the way Istio ambient's
// ztunnel does with in-pod redirection.
//
// For each workload the proxy opens its listening sockets inside the
// workload's network namespace (15001 outbound capture, 15006 inbound
// plaintext capture, 15008 inbound HBONE) and installs an nftables table
// there that redirects the workload's TCP to them. Outbound connections to
// mesh workloads travel as HTTP/2 CONNECT streams inside mutual TLS 1.3 to
// the destination's port 15008 (HBONE); everything else passes through.
// Inbound connections are authorized per connection and, where policy
// looks at HTTP, per request, before they reach the application.
//
// The package decides nothing about identity or policy itself: the
// certificates, the address-to-workload mapping and every authorization
// decision come through the small interfaces Certificates, Resolver and
// Authorizer, and telemetry leaves through Recorder and Prometheus
// metrics. Any error from those hooks denies (fail closed).
//
// docs/proxy.md describes the listeners, the nftables rules, the socket
// mark, the HBONE framing and the order of checks. Everything that touches
// the kernel is Linux only; elsewhere AddWorkload returns ErrNotSupported.
package proxy
