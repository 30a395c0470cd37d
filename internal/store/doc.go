// Package store is Rampart's state store: desired state (the objects users
// apply), allocated identities and everything else the control plane and the
// agents must agree on, kept in etcd.
//
// Rampart does not have a home-made store. etcd already gives what a
// security control plane needs and is hard to get right: linearizable reads,
// multi-key transactions with compare-and-swap, ordered watches that resume
// from a revision, crash-safe storage, and a clustered mode that operators
// know how to run and back up. The same client code talks to both back ends:
//
//   - [OpenEmbedded] runs a one-member etcd inside the process, with its data
//     under a state directory and its listeners on unix sockets inside that
//     directory, so that several instances on one machine never collide. It
//     is what `rampart up` uses.
//   - [OpenRemote] connects to an external etcd cluster, with TLS when
//     certificate files are given.
//
// On top of the key-value [Store] the package keeps Kubernetes-shaped
// objects ([PutObjects], [ListObjects], [WatchObjects], ...) and allocates
// numeric security identities ([IdentityAllocator]). docs/store.md describes
// the key layout.
package store
