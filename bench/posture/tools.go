package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// Finding is one failed check a tool reports on one manifest of the corpus.
type Finding struct {
	Check   string // the tool's check ID: "pss:privileged", "container-resources", "KSV001"
	Object  string // the object, as the tool names it
	Message string
}

// Tool is one scanner under comparison. Scan audits files (one manifest, or
// the whole corpus) in one invocation of the tool's binary, so that every
// tool is measured the same way: a process started on files, like a CI job.
type Tool struct {
	Name string
	// Install says how to get the binary when it is missing.
	Install string
	// bin is the binary and prefix its arguments, found by find.
	bin    string
	prefix []string
	env    []string
	// args returns the arguments that scan files (or dir) and print JSON.
	args func(files []string, dir string) []string
	// parse reads the JSON and groups findings by base file name.
	parse func(out []byte) (map[string][]Finding, error)
	// okExit lists exit codes that mean "ran, found problems".
	okExit []int
}

// Run scans files in one invocation. dir is their directory, for tools
// that take a directory.
func (t *Tool) Run(ctx context.Context, files []string, dir string) (map[string][]Finding, time.Duration, error) {
	args := append(append([]string{}, t.prefix...), t.args(files, dir)...)
	cmd := exec.CommandContext(ctx, t.bin, args...)
	cmd.Env = append(os.Environ(), t.env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	elapsed := time.Since(start)
	var ee *exec.ExitError
	if errors.As(err, &ee) && containsInt(t.okExit, ee.ExitCode()) {
		err = nil
	}
	if err != nil {
		return nil, elapsed, fmt.Errorf("%s %s: %w\n%s", t.Name, strings.Join(args, " "), err, tail(stderr.String()))
	}
	got, err := t.parse(stdout.Bytes())
	if err != nil {
		return nil, elapsed, fmt.Errorf("%s: parse output: %w\n%s", t.Name, err, tail(stdout.String()))
	}
	return got, elapsed, nil
}

func containsInt(l []int, v int) bool {
	for _, x := range l {
		if x == v {
			return true
		}
	}
	return false
}

func tail(s string) string {
	if len(s) > 2000 {
		return "..." + s[len(s)-2000:]
	}
	return s
}

// findBinary looks for name in PATH, then in $GOPATH/bin (go install's
// destination, often not in PATH).
func findBinary(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	var dirs []string
	if gobin := os.Getenv("GOBIN"); gobin != "" {
		dirs = append(dirs, gobin)
	}
	gopath := os.Getenv("GOPATH")
	if gopath == "" {
		if out, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
			gopath = strings.TrimSpace(string(out))
		}
	}
	for _, p := range filepath.SplitList(gopath) {
		dirs = append(dirs, filepath.Join(p, "bin"))
	}
	for _, d := range dirs {
		p := filepath.Join(d, name)
		if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s: not found in PATH or $GOPATH/bin", name)
}

// rampartTool runs Rampart's CLI: bin with prefix, such as this program
// re-executing itself as `rampart` (see main), or a rampart binary.
func rampartTool(bin string, prefix, env []string) *Tool {
	return &Tool{
		Name: "rampart", bin: bin, prefix: prefix, env: env,
		args: func(files []string, dir string) []string {
			if dir != "" {
				return []string{"audit", "-f", dir, "-o", "json"}
			}
			var a []string
			for _, f := range files {
				a = append(a, "-f", f)
			}
			return append([]string{"audit"}, append(a, "-o", "json")...)
		},
		parse: parseRampart,
	}
}

func parseRampart(out []byte) (map[string][]Finding, error) {
	var rep struct {
		Findings []struct {
			ID     string `json:"id"`
			Object struct {
				Kind, Namespace, Name string
			} `json:"object"`
			Field   string `json:"field"`
			File    string `json:"file"`
			Message string `json:"message"`
		} `json:"findings"`
	}
	if err := json.Unmarshal(out, &rep); err != nil {
		return nil, err
	}
	got := map[string][]Finding{}
	for _, f := range rep.Findings {
		obj := f.Object.Kind + "/" + f.Object.Name
		if f.Object.Namespace != "" {
			obj = f.Object.Kind + "/" + f.Object.Namespace + "/" + f.Object.Name
		}
		base := filepath.Base(f.File)
		got[base] = append(got[base], Finding{Check: f.ID, Object: obj, Message: f.Field + ": " + f.Message})
	}
	return got, nil
}

// kubeScoreOptional are kube-score's optional checks that are about
// security; the comparison turns them on so that kube-score is judged at
// its best.
var kubeScoreOptional = []string{"container-seccomp-profile"}

func kubeScoreTool(bin string) *Tool {
	return &Tool{
		Name: "kube-score", bin: bin,
		Install: "go install github.com/zegl/kube-score/cmd/kube-score@latest",
		args: func(files []string, _ string) []string {
			a := []string{"score", "-o", "json"}
			for _, o := range kubeScoreOptional {
				a = append(a, "--enable-optional-test", o)
			}
			return append(a, files...)
		},
		parse:  parseKubeScore,
		okExit: []int{1}, // 1: critical findings
	}
}

func parseKubeScore(out []byte) (map[string][]Finding, error) {
	var objs []struct {
		ObjectName string `json:"object_name"`
		FileName   string `json:"file_name"`
		Checks     []struct {
			Check struct {
				ID string `json:"id"`
			} `json:"check"`
			Grade    int  `json:"grade"`
			Skipped  bool `json:"skipped"`
			Comments []struct {
				Summary string `json:"summary"`
			} `json:"comments"`
		} `json:"checks"`
	}
	if err := json.Unmarshal(out, &objs); err != nil {
		return nil, err
	}
	got := map[string][]Finding{}
	for _, o := range objs {
		base := filepath.Base(o.FileName)
		for _, c := range o.Checks {
			// Grades: 1 critical, 5 warning, 7 almost OK, 10 OK.
			if c.Skipped || c.Grade >= 10 {
				continue
			}
			if len(c.Comments) == 0 {
				got[base] = append(got[base], Finding{Check: c.Check.ID, Object: o.ObjectName})
			}
			for _, cm := range c.Comments {
				got[base] = append(got[base], Finding{Check: c.Check.ID, Object: o.ObjectName, Message: cm.Summary})
			}
		}
	}
	return got, nil
}

func trivyTool(bin, cacheDir string) *Tool {
	return &Tool{
		Name: "trivy", bin: bin,
		Install: "GOEXPERIMENT=jsonv2 go install github.com/aquasecurity/trivy/cmd/trivy@v0.74.0",
		args: func(files []string, dir string) []string {
			target := dir
			if target == "" {
				target = files[0] // trivy config takes one target
			}
			return []string{"config", "--skip-check-update", "--cache-dir", cacheDir, "--quiet", "--format", "json", target}
		},
		parse: parseTrivy,
	}
}

func parseTrivy(out []byte) (map[string][]Finding, error) {
	var rep struct {
		Results []struct {
			Target            string `json:"Target"`
			Misconfigurations []struct {
				ID            string `json:"ID"`
				Title         string `json:"Title"`
				Message       string `json:"Message"`
				Status        string `json:"Status"`
				CauseMetadata struct {
					Resource string `json:"Resource"`
				} `json:"CauseMetadata"`
			} `json:"Misconfigurations"`
		} `json:"Results"`
	}
	if err := json.Unmarshal(out, &rep); err != nil {
		return nil, err
	}
	got := map[string][]Finding{}
	for _, r := range rep.Results {
		base := filepath.Base(r.Target)
		for _, m := range r.Misconfigurations {
			if m.Status != "FAIL" {
				continue
			}
			got[base] = append(got[base], Finding{Check: m.ID, Object: m.CauseMetadata.Resource, Message: m.Title + ": " + m.Message})
		}
	}
	return got, nil
}
