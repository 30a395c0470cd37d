// Package ca is the mesh's certificate authority and the workload side of
// it: everything needed for two workloads to prove their SPIFFE identities
// to each other over mutual TLS.
//
// The control plane opens an [Authority] ([Open]) on a state directory. It
// holds a root CA, either a self-signed ECDSA P-256 root that it creates and
// keeps in that directory, or an operator's CA in Istio's plug-in layout
// (ca-cert.pem, ca-key.pem, root-cert.pem, cert-chain.pem), and signs
// certificate signing requests into X.509 SVIDs whose only name is
// spiffe://<trust domain>/ns/<namespace>/sa/<service account>. Its key never
// leaves it. Roots are rotated in three phases ([Authority.Rotate]) so that
// every peer trusts a new root before any leaf signed by it is presented,
// and the old root is dropped only once nothing it signed is still valid.
//
// Each workload identity on a node has a [Source]: it generates a key, asks
// a [Signer] (the Authority in-process, or the control plane over an
// authenticated channel) to sign a CSR, keeps the certificate and the trust
// bundle that came with it, and renews at about half the lifetime.
//
// The proxy builds its TLS configurations with [ServerTLSConfig] and
// [ClientTLSConfig]. They present the current certificate and verify every
// peer against the current trust bundle with [VerifyPeer], which applies the
// SPIFFE X.509-SVID rules through github.com/spiffe/go-spiffe/v2, the
// reference implementation, and names the rule a refused peer broke.
//
// docs/ca.md describes the file layout, the certificate profile, the
// rotation phases and the renewal policy.
package ca
