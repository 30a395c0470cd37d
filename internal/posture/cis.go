package posture

import (
	"maps"
	"slices"
)

// cisURL is where the CIS Kubernetes Benchmark is published.
const cisURL = "https://www.cisecurity.org/benchmark/kubernetes"

// cisTitles are the section 5 recommendations of the CIS Kubernetes
// Benchmark 1.9, by number.
var cisTitles = map[string]string{
	"5.1.1":  "Ensure that the cluster-admin role is only used where required",
	"5.1.2":  "Minimize access to secrets",
	"5.1.3":  "Minimize wildcard use in Roles and ClusterRoles",
	"5.1.4":  "Minimize access to create pods",
	"5.1.5":  "Ensure that default service accounts are not actively used",
	"5.1.6":  "Ensure that Service Account Tokens are only mounted where necessary",
	"5.1.7":  "Avoid use of system:masters group",
	"5.1.8":  "Limit use of the Bind, Impersonate and Escalate permissions in the Kubernetes cluster",
	"5.1.9":  "Minimize access to create persistent volumes",
	"5.1.10": "Minimize access to the proxy sub-resource of nodes",
	"5.1.11": "Minimize access to the approval sub-resource of certificatesigningrequests objects",
	"5.1.12": "Minimize access to webhook configuration objects",
	"5.1.13": "Minimize access to the service account token creation",
	"5.2.1":  "Ensure that the cluster has at least one active policy control mechanism in place",
	"5.2.2":  "Minimize the admission of privileged containers",
	"5.2.3":  "Minimize the admission of containers wishing to share the host process ID namespace",
	"5.2.4":  "Minimize the admission of containers wishing to share the host IPC namespace",
	"5.2.5":  "Minimize the admission of containers wishing to share the host network namespace",
	"5.2.6":  "Minimize the admission of containers with allowPrivilegeEscalation",
	"5.2.7":  "Minimize the admission of root containers",
	"5.2.8":  "Minimize the admission of containers with the NET_RAW capability",
	"5.2.9":  "Minimize the admission of containers with added capabilities",
	"5.2.10": "Minimize the admission of containers with capabilities assigned",
	"5.2.11": "Minimize the admission of Windows HostProcess containers",
	"5.2.12": "Minimize the admission of HostPath volumes",
	"5.2.13": "Minimize the admission of containers which use HostPorts",
	"5.3.2":  "Ensure that all Namespaces have Network Policies defined",
	"5.4.1":  "Prefer using Secrets as files over Secrets as environment variables",
	"5.7.1":  "Create administrative boundaries between resources using namespaces",
	"5.7.2":  "Ensure that the seccomp profile is set to docker/default in your Pod definitions",
	"5.7.3":  "Apply Security Context to Your Pods and Containers",
	"5.7.4":  "The default namespace should not be used",
}

// CISSections lists the CIS sections Rampart implements, in numeric order.
func CISSections() []string {
	out := slices.Collect(maps.Keys(cisTitles))
	slices.SortFunc(out, compareControls)
	return out
}

func sortedKeys[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }
