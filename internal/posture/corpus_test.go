package posture_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
	"k8s.io/pod-security-admission/api"
	"k8s.io/pod-security-admission/policy"

	"github.com/rampartsec/rampart/internal/posture"
	"github.com/rampartsec/rampart/internal/resource"
)

// mustAudit decodes the manifests at path and audits them with opts.
func mustAudit(t *testing.T, path string, opts posture.Options) (posture.Report, []*resource.Object) {
	t.Helper()
	objs, err := resource.LoadAndDecode([]string{path}, nil)
	if err != nil {
		t.Fatalf("decode %s: %v", path, err)
	}
	return posture.Audit(objs, opts), objs
}

func findingIDs(r posture.Report) []string {
	var ids []string
	for _, f := range r.Findings {
		ids = append(ids, f.ID)
	}
	slices.Sort(ids)
	return slices.Compact(ids)
}

// TestCorpus checks every manifest of testdata/corpus against the finding
// IDs testdata/corpus/expect.yaml lists for it.
func TestCorpus(t *testing.T) {
	data, err := os.ReadFile("testdata/corpus/expect.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var expect map[string][]string
	if err := yaml.Unmarshal(data, &expect); err != nil {
		t.Fatalf("expect.yaml: %v", err)
	}
	files, _ := filepath.Glob("testdata/corpus/*.yaml")
	var manifests []string
	for _, f := range files {
		if filepath.Base(f) != "expect.yaml" {
			manifests = append(manifests, filepath.Base(f))
		}
	}
	if len(manifests) < 40 {
		t.Errorf("corpus has %d manifests, want at least 40", len(manifests))
	}
	for name := range expect {
		if !slices.Contains(manifests, name) {
			t.Errorf("expect.yaml lists %s, which is not in the corpus", name)
		}
	}
	for _, name := range manifests {
		t.Run(strings.TrimSuffix(name, ".yaml"), func(t *testing.T) {
			want, ok := expect[name]
			if !ok {
				t.Fatalf("%s has no entry in expect.yaml", name)
			}
			if want == nil {
				want = []string{}
			}
			rep, _ := mustAudit(t, filepath.Join("testdata/corpus", name), posture.Options{})
			got := findingIDs(rep)
			if got == nil {
				got = []string{}
			}
			if !slices.Equal(got, want) {
				var b strings.Builder
				for _, f := range rep.Findings {
					b.WriteString("\n  " + f.ID + " " + f.Object.String() + " " + f.Field + ": " + f.Message)
				}
				t.Errorf("finding IDs = %v, want %v%s", got, want, b.String())
			}
			for _, f := range rep.Findings {
				if f.Line <= 0 || f.File == "" || f.Field == "" {
					t.Errorf("%s on %s has no location (file %q, line %d, field %q)", f.ID, f.Object, f.File, f.Line, f.Field)
				}
			}
		})
	}
}

// TestHardenedCorpusIsRestricted proves the hardened manifests meet the
// restricted profile: no finding cites it.
func TestHardenedCorpusIsRestricted(t *testing.T) {
	files, _ := filepath.Glob("testdata/corpus/hardened-*.yaml")
	if len(files) < 5 {
		t.Fatalf("only %d hardened manifests", len(files))
	}
	for _, f := range files {
		rep, _ := mustAudit(t, f, posture.Options{Standards: []posture.Standard{posture.PSSRestricted}})
		for _, fd := range rep.Findings {
			t.Errorf("%s: %s %s %s: %s", filepath.Base(f), fd.ID, fd.Object, fd.Field, fd.Message)
		}
	}
}

// TestPSSAgreesWithKubernetes compares, for every workload of the corpus,
// the PSS findings with the verdict of the library's own evaluator at
// baseline and restricted: the failing check count is the number of
// distinct pss: IDs Rampart reports, before merging folds a restricted
// override into its baseline twin.
func TestPSSAgreesWithKubernetes(t *testing.T) {
	eval, err := policy.NewEvaluator(policy.DefaultChecks(), nil)
	if err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob("testdata/corpus/*.yaml")
	workloads := 0
	for _, f := range files {
		if filepath.Base(f) == "expect.yaml" {
			continue
		}
		for _, std := range []posture.Standard{posture.PSSBaseline, posture.PSSRestricted} {
			rep, objs := mustAudit(t, f, posture.Options{Standards: []posture.Standard{std}})
			level := api.LevelBaseline
			if std == posture.PSSRestricted {
				level = api.LevelRestricted
			}
			for _, o := range objs {
				w, ok := posture.NewWorkload(o)
				if !ok || strings.Contains(f, "owned-") && o.Kind == "ReplicaSet" {
					continue
				}
				workloads++
				res := eval.EvaluatePod(api.LevelVersion{Level: level, Version: api.LatestVersion()}, w.Meta, w.Spec)
				allowed := policy.AggregateCheckResults(res).Allowed
				var pss []posture.Finding
				for _, fd := range rep.Findings {
					if fd.Object == w.Ref() && strings.HasPrefix(fd.ID, "pss:") {
						pss = append(pss, fd)
					}
				}
				if allowed != (len(pss) == 0) {
					t.Errorf("%s %s at %s: Kubernetes allowed=%v, Rampart reports %d PSS findings", filepath.Base(f), o.Ref(), level, allowed, len(pss))
				}
			}
		}
	}
	if workloads == 0 {
		t.Fatal("no workloads in the corpus")
	}
}
