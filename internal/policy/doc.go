// Package policy resolves network policy into per-endpoint verdicts.
//
// Kubernetes NetworkPolicy, CiliumNetworkPolicy and
// CiliumClusterwideNetworkPolicy are compiled into one rule model: each rule
// has a subject (the endpoints it applies to), a direction, peers (label
// selectors over identity labels, CIDRs, entities), ports, an allow or deny
// action and optional L7 HTTP rules. Resolution selects, for each identity,
// the rules that apply to it, and decides flows with one function
// ([Repository.Decide]) that the offline trace and matrix use and that the
// datapath compiles into kernel maps ([Repository.Table]). One evaluator is
// the single source of truth for what a policy means.
//
// The semantics, and where they differ on purpose from Kubernetes or Cilium,
// are written down in docs/policy-semantics.md.
package policy
