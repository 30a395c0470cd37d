package store_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rampartsec/rampart/internal/store"
	"github.com/rampartsec/rampart/internal/testenv"
)

// defaultEtcdBin is where hack/kube-testenv.sh build puts etcd.
const defaultEtcdBin = "/var/cache/rampart-testenv/bin/etcd"

// etcdBin returns the etcd binary for external-store tests: $RAMPART_ETCD_BIN,
// or the one hack/kube-testenv.sh builds. Without one the test is skipped,
// unless CI=true, where CI builds it first and a skip would hide a broken
// setup.
func etcdBin(t testing.TB) string {
	t.Helper()
	bin := os.Getenv("RAMPART_ETCD_BIN")
	if bin == "" {
		bin = defaultEtcdBin
	}
	if _, err := os.Stat(bin); err != nil {
		if testenv.InCI() {
			t.Fatalf("etcd binary: %v (CI must run hack/kube-testenv.sh build first)", err)
		}
		t.Skipf("skipping: no etcd binary at %s; build one with `sudo hack/kube-testenv.sh build` or set RAMPART_ETCD_BIN", bin)
	}
	return bin
}

// etcdServer is an etcd process started for one test.
type etcdServer struct {
	Endpoint string // client URL
	Dir      string
	TLS      *testPKI // nil for plain HTTP
	bin      string
	args     []string
	log      *testenv.SyncBuffer

	mu   sync.Mutex
	stop func() // stops the running process
}

// startEtcd starts an external etcd on free ports of 127.0.0.1 with its
// data in a temporary directory and stops it in t.Cleanup. With pki it
// serves TLS and requires client certificates.
func startEtcd(t testing.TB, pki *testPKI) *etcdServer {
	t.Helper()
	bin := etcdBin(t)
	dir := t.TempDir()
	var lastErr error
	for range 3 { // a free port can be taken before etcd binds it
		srv, err := tryStartEtcd(t, bin, dir, pki)
		if err == nil {
			return srv
		}
		lastErr = err
		os.RemoveAll(filepath.Join(dir, "data"))
	}
	t.Fatalf("start etcd: %v", lastErr)
	return nil
}

func tryStartEtcd(t testing.TB, bin, dir string, pki *testPKI) (*etcdServer, error) {
	clientPort, peerPort := freePort(t), freePort(t)
	scheme := "http"
	if pki != nil {
		scheme = "https"
	}
	clientURL := fmt.Sprintf("%s://127.0.0.1:%d", scheme, clientPort)
	peerURL := fmt.Sprintf("http://127.0.0.1:%d", peerPort)
	args := []string{
		"--name=test",
		"--data-dir=" + filepath.Join(dir, "data"),
		"--listen-client-urls=" + clientURL,
		"--advertise-client-urls=" + clientURL,
		"--listen-peer-urls=" + peerURL,
		"--initial-advertise-peer-urls=" + peerURL,
		"--initial-cluster=test=" + peerURL,
		"--unsafe-no-fsync",
		"--log-level=warn",
	}
	if pki != nil {
		args = append(args,
			"--cert-file="+pki.ServerCert, "--key-file="+pki.ServerKey,
			"--trusted-ca-file="+pki.CA, "--client-cert-auth")
	}
	srv := &etcdServer{Endpoint: clientURL, Dir: dir, TLS: pki, bin: bin, args: args, log: &testenv.SyncBuffer{}}
	if err := srv.launch(clientPort); err != nil {
		return nil, err
	}
	t.Cleanup(func() {
		srv.Stop()
		if t.Failed() {
			t.Logf("etcd log:\n%s", tail(srv.log))
		}
	})
	return srv, nil
}

// launch starts the process and waits until it serves.
func (e *etcdServer) launch(clientPort int) error {
	cmd := exec.Command(e.bin, e.args...)
	cmd.Stdout, cmd.Stderr = e.log, e.log
	setPdeathsig(cmd)
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	stop := func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
	}
	e.mu.Lock()
	e.stop = stop
	e.mu.Unlock()
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case <-exited:
			return fmt.Errorf("etcd exited during start-up:\n%s", tail(e.log))
		default:
		}
		if c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(clientPort), time.Second); err == nil {
			c.Close()
			if s, err := e.open(2 * time.Second); err == nil {
				s.Close()
				return nil
			}
		}
		if time.Now().After(deadline) {
			stop()
			return fmt.Errorf("etcd not ready after 30s:\n%s", tail(e.log))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Stop stops the server; its data stays for Restart.
func (e *etcdServer) Stop() {
	e.mu.Lock()
	stop := e.stop
	e.stop = nil
	e.mu.Unlock()
	if stop != nil {
		stop()
	}
}

// Restart starts the stopped server again, on the same ports and data.
func (e *etcdServer) Restart(t testing.TB) {
	t.Helper()
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(strings.TrimPrefix(e.Endpoint, "http://"), "https://"))
	p, _ := strconv.Atoi(port)
	if err := e.launch(p); err != nil {
		t.Fatalf("restart etcd: %v", err)
	}
}

// open connects a store to the server, with client certificates if it
// serves TLS.
func (e *etcdServer) open(timeout time.Duration) (*store.Etcd, error) {
	cfg := store.RemoteConfig{Endpoints: []string{e.Endpoint}, DialTimeout: timeout}
	if e.TLS != nil {
		cfg.CAFile, cfg.CertFile, cfg.KeyFile = e.TLS.CA, e.TLS.ClientCert, e.TLS.ClientKey
	}
	return store.OpenRemote(context.Background(), cfg)
}

// mustRemote starts an etcd and returns a store connected to it, closed in
// t.Cleanup.
func mustRemote(t testing.TB) *store.Etcd {
	t.Helper()
	srv := startEtcd(t, nil)
	s, err := srv.open(10 * time.Second)
	if err != nil {
		t.Fatalf("open remote store: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// tail is the end of a process's output, enough to see why it failed.
func tail(b *testenv.SyncBuffer) string {
	s := b.String()
	if len(s) > 8000 {
		s = "..." + s[len(s)-8000:]
	}
	return strings.TrimSpace(s)
}

func itoa(i int) string { return strconv.Itoa(i) }
