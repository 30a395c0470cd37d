// Package testenv gives integration tests a real Kubernetes API server.
//
// Tests run against a kube-apiserver and etcd built from source by
// hack/kube-testenv.sh rather than against fakes, because the behaviour under
// test (admission webhooks, RBAC, validation) lives in the API server itself
// and a fake would only repeat our own assumptions back to us.
package testenv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// scriptRel is the control script's path relative to the module root.
const scriptRel = "hack/kube-testenv.sh"

// buildTimeout bounds the first build, which compiles kube-apiserver from
// source and takes several minutes on a two-core machine; later calls find the
// cached binaries and return at once.
const buildTimeout = 20 * time.Minute

// startTimeout bounds start-up; the script itself gives up on readiness after
// 120 seconds, so this only catches a script that hangs.
const startTimeout = 3 * time.Minute

var (
	kubeOnce sync.Once
	kubeMu   sync.Mutex
	kubeDir  string
	kubePath string
	kubeErr  error
)

// KubeConfigPath returns the path of an admin kubeconfig for a running API
// server, starting one on first use.
//
// A kubeconfig named by RAMPART_KUBECONFIG is used as is, so a developer can
// point tests at a cluster they already run. Otherwise one server pair is
// started per test binary and shared by all its tests, because start-up takes
// seconds and tests isolate themselves by namespace. Building and starting
// needs root (the cache lives under /var/cache), so without root the test is
// skipped unless CI is set, where a silent skip would hide a broken setup and
// every failure is fatal instead. Callers that use this must call StopKube
// from TestMain after m.Run, or the servers outlive the test binary until the
// script's watchdog notices.
func KubeConfigPath(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("RAMPART_KUBECONFIG"); p != "" {
		return p
	}
	if os.Geteuid() != 0 && !InCI() {
		t.Skip("skipping: needs a real kube-apiserver; run as root (hack/kube-testenv.sh builds into /var/cache) or set RAMPART_KUBECONFIG")
	}
	kubeOnce.Do(startKube)
	kubeMu.Lock()
	defer kubeMu.Unlock()
	if kubeErr != nil {
		t.Fatalf("kube test environment: %v", kubeErr)
	}
	if kubePath == "" {
		t.Fatal("kube test environment: already stopped by StopKube")
	}
	return kubePath
}

// StopKube stops the servers that KubeConfigPath started, if any, and removes
// their directory. It is meant for TestMain, after m.Run, because only there
// is it known that no test of the binary needs the servers any more.
func StopKube() {
	kubeMu.Lock()
	defer kubeMu.Unlock()
	if kubeDir == "" {
		return
	}
	if script, err := findScript(); err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if out, err := exec.CommandContext(ctx, script, "stop", kubeDir).CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "testenv: stopping kube: %v\n%s", err, out)
		}
	}
	os.RemoveAll(kubeDir)
	kubeDir, kubePath = "", ""
}

// startKube builds (if needed) and starts the servers, recording the result
// in the package variables for every later caller.
func startKube() {
	kubeMu.Lock()
	defer kubeMu.Unlock()
	script, err := findScript()
	if err != nil {
		kubeErr = err
		return
	}
	if _, err := runScript(buildTimeout, script, "build"); err != nil {
		kubeErr = err
		return
	}
	dir, err := os.MkdirTemp("", "rampart-kube-")
	if err != nil {
		kubeErr = err
		return
	}
	out, err := runScript(startTimeout, script, "start", dir)
	if err != nil {
		os.RemoveAll(dir)
		kubeErr = err
		return
	}
	// The script's last stdout line is KUBECONFIG=PATH; everything else goes
	// to stderr.
	lines := strings.Split(strings.TrimSpace(out), "\n")
	path, ok := strings.CutPrefix(lines[len(lines)-1], "KUBECONFIG=")
	if !ok {
		runScript(time.Minute, script, "stop", dir)
		os.RemoveAll(dir)
		kubeErr = fmt.Errorf("%s start printed no KUBECONFIG= line: %q", scriptRel, out)
		return
	}
	kubeDir, kubePath = dir, path
}

// runScript runs the control script and returns its stdout. The owner PID
// lets the script's watchdog stop the servers if this test binary dies
// without reaching StopKube (a panic or a -timeout kill). On failure the
// error carries the end of stderr, where the script prints server logs.
func runScript(timeout time.Duration, script string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, script, args...)
	cmd.Env = append(os.Environ(), fmt.Sprintf("RAMPART_TESTENV_OWNER_PID=%d", os.Getpid()))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	// The servers are started detached with their own output files, so
	// nothing should hold the pipes open; WaitDelay guards against it anyway.
	cmd.WaitDelay = 10 * time.Second
	if err := cmd.Run(); err != nil {
		tail := stderr.String()
		if len(tail) > 8000 {
			tail = "..." + tail[len(tail)-8000:]
		}
		return "", fmt.Errorf("%s %s: %w\n%s", scriptRel, strings.Join(args, " "), err, tail)
	}
	return stdout.String(), nil
}

// findScript locates hack/kube-testenv.sh by walking up from the working
// directory (go test runs each package in its own directory) to the module
// root, falling back to git for unusual working directories.
func findScript() (string, error) {
	if wd, err := os.Getwd(); err == nil {
		for dir := wd; ; dir = filepath.Dir(dir) {
			if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
				p := filepath.Join(dir, scriptRel)
				if _, err := os.Stat(p); err == nil {
					return p, nil
				}
			}
			if filepath.Dir(dir) == dir {
				break
			}
		}
	}
	if out, err := exec.Command("git", "rev-parse", "--show-toplevel").Output(); err == nil {
		p := filepath.Join(strings.TrimSpace(string(out)), scriptRel)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", errors.New("cannot find " + scriptRel + " above the working directory")
}

// UnreachableKubeconfig is a kubeconfig whose API server is a loopback port
// nothing listens on: for tests of what a command does when the cluster
// cannot be reached.
const UnreachableKubeconfig = `apiVersion: v1
kind: Config
clusters:
- name: c
  cluster: {server: "http://127.0.0.1:1"}
contexts:
- name: c
  context: {cluster: c, user: u}
users:
- name: u
  user: {}
current-context: c
`
