package cli

import (
	"context"
	"strings"

	"github.com/spf13/cobra"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/rampartsec/rampart/internal/mesh"
	"github.com/rampartsec/rampart/internal/policy"
	"github.com/rampartsec/rampart/internal/posture"
	"github.com/rampartsec/rampart/internal/resource"
)

// defaultTrustDomain is the trust domain of mesh principals unless
// --trust-domain says otherwise: Istio's and Rampart's CA default.
const defaultTrustDomain = "cluster.local"

func addMeshTraceFlags(cmd *cobra.Command, o *traceOpts) {
	f := cmd.Flags()
	f.StringVar(&o.jwt, "jwt", "", "JWT sent as \"Authorization: Bearer TOKEN\", checked against RequestAuthentication (mesh)")
	f.StringVar(&o.jwtFile, "jwt-file", "", "file holding the JWT, instead of --jwt")
	f.StringVar(&o.fromSA, "from-service-account", "", "service account the source runs as (default: its serviceAccountName, else default)")
	f.StringVar(&o.toSA, "to-service-account", "", "service account the destination runs as (default: its serviceAccountName, else default)")
	f.BoolVar(&o.plaintext, "plaintext", false, "the source is not in the mesh: it connects in plaintext, without a principal")
	f.StringVar(&o.trustDomain, "trust-domain", defaultTrustDomain, "trust domain of mesh principals")
	f.StringVar(&o.pathNorm, "path-normalization", "BASE", "how the node normalizes --path before matching (its rampart up --path-normalization): "+mesh.PathNormalizationNames())
}

// meshOpts are the mesh flags, checked before any input is read.
type meshOpts struct {
	jwt          *traceJWT // nil without --jwt or --jwt-file
	fromSA, toSA string
	plaintext    bool
	trustDomain  string
	pathNorm     mesh.PathNormalization
	// meshOnly names the flags given that only mean something in the mesh.
	meshOnly []string
}

func parseMeshFlags(cmd *cobra.Command, o traceOpts) (meshOpts, error) {
	mo := meshOpts{fromSA: o.fromSA, toSA: o.toSA, plaintext: o.plaintext, trustDomain: o.trustDomain}
	for _, sa := range []struct{ flag, v string }{{"--from-service-account", o.fromSA}, {"--to-service-account", o.toSA}} {
		if sa.v == "" {
			continue
		}
		if errs := validation.IsDNS1123Subdomain(sa.v); len(errs) > 0 {
			return mo, UsageError("%s %q: not a service account name: %s", sa.flag, sa.v, strings.Join(errs, "; "))
		}
	}
	if mo.trustDomain == "" || strings.ContainsAny(mo.trustDomain, "/: ") {
		return mo, UsageError("--trust-domain %q: want a trust domain such as %s", mo.trustDomain, defaultTrustDomain)
	}
	var err error
	if mo.pathNorm, err = mesh.ParsePathNormalization(o.pathNorm); err != nil {
		return mo, UsageError("--path-normalization: %v", err)
	}
	tok, err := readJWT(cmd, o)
	if err != nil {
		return mo, err
	}
	mo.jwt = tok
	for _, n := range []string{"jwt", "jwt-file", "plaintext", "trust-domain", "path-normalization"} {
		if cmd.Flags().Changed(n) {
			mo.meshOnly = append(mo.meshOnly, "--"+n)
		}
	}
	return mo, nil
}

// needsMesh fails when a mesh-only flag was given for a flow the mesh does
// not see: silently ignoring a token would read as "it was accepted".
func (mo meshOpts) needsMesh() error {
	if len(mo.meshOnly) == 0 {
		return nil
	}
	return UsageError("%s: the flow does not go through the mesh (no AuthorizationPolicy, PeerAuthentication or RequestAuthentication in the input, and the destination's namespace is not labelled %s=enabled)",
		strings.Join(mo.meshOnly, ", "), posture.MeshLabel)
}

func (mo meshOpts) overridesServiceAccount() bool { return mo.fromSA != "" || mo.toSA != "" }

// applyServiceAccounts makes the --from and --to workloads run as the
// service accounts the flags name and rebuilds the repository, so that
// L3/L4 (whose identities carry the service account) and the mesh
// principal agree.
func (mo meshOpts) applyServiceAccounts(ctx context.Context, objs []*resource.Object, src, dst policy.Side) (*policy.Repository, error) {
	for _, s := range []struct {
		flag, sa string
		side     policy.Side
	}{{"--from-service-account", mo.fromSA, src}, {"--to-service-account", mo.toSA, dst}} {
		if s.sa == "" {
			continue
		}
		e := s.side.Endpoint
		if e == nil {
			return nil, UsageError("%s: %s is not a workload of the input", s.flag, s.side)
		}
		for _, o := range objs {
			if o.Kind == e.Kind && o.Namespace == e.Namespace && o.Name == e.Name {
				if spec := podSpecOf(o); spec != nil {
					spec.ServiceAccountName = s.sa
				}
			}
		}
	}
	repo, err := policy.Build(ctx, objs, nil)
	if err != nil {
		return nil, &ExitError{Code: 1, Err: err}
	}
	return repo, nil
}

// podSpecOf returns the pod spec of a workload object, or nil.
func podSpecOf(o *resource.Object) *corev1.PodSpec {
	switch obj := o.Obj.(type) {
	case *corev1.Pod:
		return &obj.Spec
	case *appsv1.Deployment:
		return &obj.Spec.Template.Spec
	case *appsv1.StatefulSet:
		return &obj.Spec.Template.Spec
	case *appsv1.DaemonSet:
		return &obj.Spec.Template.Spec
	case *appsv1.ReplicaSet:
		return &obj.Spec.Template.Spec
	case *batchv1.Job:
		return &obj.Spec.Template.Spec
	case *batchv1.CronJob:
		return &obj.Spec.JobTemplate.Spec.Template.Spec
	}
	return nil
}

// isMeshPolicy reports whether o is one of the Istio security kinds.
func isMeshPolicy(o *resource.Object) bool {
	switch o.Obj.(type) {
	case *resource.AuthorizationPolicy, *resource.PeerAuthentication, *resource.RequestAuthentication:
		return true
	}
	return false
}

// hasMesh reports whether trace follows the flow through the mesh: the
// input holds Istio security policy, or the destination's namespace is
// labelled rampart.io/mesh=enabled.
func hasMesh(objs []*resource.Object, repo *policy.Repository, dst policy.Side) bool {
	if dst.Endpoint != nil && inMeshNamespace(repo, dst.Endpoint.Namespace) {
		return true
	}
	for _, o := range objs {
		if isMeshPolicy(o) {
			return true
		}
	}
	return false
}

func inMeshNamespace(repo *policy.Repository, ns string) bool {
	return repo.NamespaceLabels(ns)[posture.MeshLabel] == "enabled"
}

// serviceAccountOf is the service account a workload runs as: Kubernetes
// uses "default" when the pod names none.
func serviceAccountOf(e *policy.Endpoint) string {
	if e.ServiceAccount == "" {
		return "default"
	}
	return e.ServiceAccount
}
