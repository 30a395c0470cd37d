package store_test

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rampartsec/rampart/internal/store"
)

func openEmbedded(t *testing.T, cfg store.EmbeddedConfig) *store.Etcd {
	t.Helper()
	cfg.UnsafeNoFsync = true
	start := time.Now()
	s, err := store.OpenEmbedded(testContext(t), cfg)
	if err != nil {
		t.Fatalf("open embedded store in %s: %v", cfg.Dir, err)
	}
	t.Logf("opened in %v at %v", time.Since(start).Round(time.Millisecond), s.Endpoints())
	return s
}

// TestEmbeddedRestart closes the embedded store and opens it again on the
// same directory: the data, and the revision, are still there.
func TestEmbeddedRestart(t *testing.T) {
	dir := t.TempDir()
	s := openEmbedded(t, store.EmbeddedConfig{Dir: dir})
	rev := mustApply(t, s, []store.KV{put("/k", "kept")}, nil)
	if err := s.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	s = openEmbedded(t, store.EmbeddedConfig{Dir: dir})
	defer s.Close()
	kv, err := s.Get(testContext(t), "/k")
	if err != nil || string(kv.Value) != "kept" || kv.Revision != rev {
		t.Fatalf("after restart Get = %+v, %v; want kept at revision %d", kv, err, rev)
	}
	if rev2 := mustApply(t, s, []store.KV{put("/k2", "x")}, nil); rev2 <= rev {
		t.Fatalf("revision went back after restart: %d then %d", rev, rev2)
	}
}

// TestEmbeddedSideBySide runs two embedded stores in different directories
// of one machine, as two `rampart up` in tests do: neither sees the other's
// data.
func TestEmbeddedSideBySide(t *testing.T) {
	a := openEmbedded(t, store.EmbeddedConfig{Dir: t.TempDir()})
	defer a.Close()
	b := openEmbedded(t, store.EmbeddedConfig{Dir: t.TempDir()})
	defer b.Close()
	mustApply(t, a, []store.KV{put("/who", "a")}, nil)
	mustApply(t, b, []store.KV{put("/who", "b")}, nil)
	for s, want := range map[*store.Etcd]string{a: "a", b: "b"} {
		if got := dump(t, s, ""); len(got) != 1 || got[0] != "/who="+want {
			t.Errorf("store %s holds %v, want only /who=%s", s.Endpoints()[0], got, want)
		}
	}
	if a.Endpoints()[0] == b.Endpoints()[0] {
		t.Fatalf("both stores listen on %s", a.Endpoints()[0])
	}
}

// TestEmbeddedSameDir checks that a second store on a directory in use
// fails at once and leaves the first one working.
func TestEmbeddedSameDir(t *testing.T) {
	dir := t.TempDir()
	a := openEmbedded(t, store.EmbeddedConfig{Dir: dir})
	defer a.Close()
	_, err := store.OpenEmbedded(testContext(t), store.EmbeddedConfig{Dir: dir, UnsafeNoFsync: true})
	if err == nil || !strings.Contains(err.Error(), "another Rampart store uses this state directory") {
		t.Fatalf("second open err = %v, want the directory to be locked", err)
	}
	mustApply(t, a, []store.KV{put("/still", "works")}, nil)
}

// TestEmbeddedLayout checks where the store keeps things and with what
// permissions: nothing readable by others, a unix socket and no TCP
// listener.
func TestEmbeddedLayout(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	s := openEmbedded(t, store.EmbeddedConfig{Dir: dir})
	defer s.Close()
	for _, p := range []string{dir, filepath.Join(dir, "data")} {
		st, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o700 {
			t.Errorf("%s has mode %v, want 0700", p, st.Mode().Perm())
		}
	}
	sock := filepath.Join(dir, "client.sock")
	if st, err := os.Stat(sock); err != nil || st.Mode()&os.ModeSocket == 0 {
		t.Errorf("%s is not a socket: %v", sock, err)
	}
	if got, want := s.Endpoints(), "unix://"+sock; len(got) != 1 || got[0] != want {
		t.Errorf("endpoints %v, want [%s]", got, want)
	}
	if _, err := os.Stat(filepath.Join(dir, "peer.sock")); !os.IsNotExist(err) {
		t.Errorf("a peer socket exists (err %v); one member needs no peer listener", err)
	}
}

// TestEmbeddedTCP checks the loopback TCP mode, chosen on request or when the
// directory is too deep for a unix socket path.
func TestEmbeddedTCP(t *testing.T) {
	deep := t.TempDir()
	for len(deep) < 120 {
		deep = filepath.Join(deep, "a-rather-long-directory-name")
	}
	for name, cfg := range map[string]store.EmbeddedConfig{
		"requested": {Dir: t.TempDir(), TCP: true},
		"deep dir":  {Dir: deep},
	} {
		t.Run(name, func(t *testing.T) {
			s := openEmbedded(t, cfg)
			defer s.Close()
			if ep := s.Endpoints()[0]; !strings.HasPrefix(ep, "http://127.0.0.1:") {
				t.Fatalf("endpoint %s, want http://127.0.0.1:<port>", ep)
			}
			mustApply(t, s, []store.KV{put("/k", "v")}, nil)
		})
	}
}

// TestEmbeddedQuiet checks that etcd's start-up and shut-down chatter does
// not reach the logger; only real warnings would.
func TestEmbeddedQuiet(t *testing.T) {
	var buf bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo}))
	s := openEmbedded(t, store.EmbeddedConfig{Dir: t.TempDir(), Logger: logger})
	mustApply(t, s, []store.KV{put("/k", "v")}, nil)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if buf.Len() > 0 {
		t.Errorf("etcd logged during a clean open, write and close:\n%s", buf.String())
	}
}

func TestOpenEmbeddedErrors(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for name, cfg := range map[string]store.EmbeddedConfig{
		"no dir":       {},
		"dir is file":  {Dir: file},
		"under a file": {Dir: filepath.Join(file, "sub")},
	} {
		t.Run(name, func(t *testing.T) {
			if s, err := store.OpenEmbedded(context.Background(), cfg); err == nil {
				s.Close()
				t.Fatal("OpenEmbedded succeeded")
			}
		})
	}
}
