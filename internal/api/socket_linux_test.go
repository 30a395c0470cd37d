package api_test

import (
	"context"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/rampartsec/rampart/internal/api"
	"github.com/rampartsec/rampart/internal/testenv"
)

// TestMain lets the test binary act as a client under another uid.
func TestMain(m *testing.M) {
	if path := os.Getenv("RAMPART_TEST_DIAL"); path != "" {
		c, err := net.Dial("unix", path)
		if err != nil {
			os.Exit(3) // refused by the file mode
		}
		c.Write([]byte("GET /v1/status HTTP/1.0\r\n\r\n"))
		c.SetReadDeadline(time.Now().Add(2 * time.Second))
		buf := make([]byte, 64)
		if n, _ := c.Read(buf); n > 0 {
			os.Exit(0) // answered: the check failed
		}
		os.Exit(4) // closed without an answer by the peer check
	}
	os.Exit(m.Run())
}

// TestSocketIsRootOnly checks the three locks on the API socket: directory
// 0700, socket 0600, and the peer-credential check that closes connections
// from other uids even when the file mode would let them in.
func TestSocketIsRootOnly(t *testing.T) {
	testenv.RequireRoot(t, "to change the socket's owner")
	// Not t.TempDir: its parent is 0700, and uid 65534 must be able to
	// reach the socket's directory once its mode is opened below.
	dir, err := os.MkdirTemp("", "rampart-api-sock")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "run", "rampart.sock")
	l, err := api.Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`{"version":"test"}`))
	})}
	go srv.Serve(l)
	defer srv.Close()

	for p, want := range map[string]os.FileMode{filepath.Dir(path): 0o700, path: 0o600} {
		st, err := os.Stat(p)
		if err != nil || st.Mode().Perm() != want {
			t.Errorf("%s mode = %v, want %v", p, st.Mode().Perm(), want)
		}
	}
	st, err := api.NewClient(path).Status(context.Background())
	if err != nil || st.Version != "test" {
		t.Fatalf("root client: %v, %v", st, err)
	}
	if _, err := api.Listen(path); err == nil {
		t.Error("a second Listen took over a live socket")
	}

	// Open the file mode wide, so only the peer check stands in the way of
	// uid 65534.
	os.Chmod(filepath.Dir(path), 0o777)
	os.Chmod(path, 0o777)
	// The test binary lives in a 0700 build directory; give uid 65534 a
	// copy it can execute.
	bin, err := os.MkdirTemp("", "rampart-api-test")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(bin)
	os.Chmod(bin, 0o755)
	exe, _ := os.Executable()
	data, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	client := filepath.Join(bin, "client")
	if err := os.WriteFile(client, data, 0o755); err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o755)
	cmd := exec.Command(client)
	cmd.Env = []string{"RAMPART_TEST_DIAL=" + path}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	err = cmd.Run()
	var ee *exec.ExitError
	if err == nil {
		t.Fatal("uid 65534 got an answer from the API")
	}
	if !errorsAs(err, &ee) || ee.ExitCode() != 4 {
		t.Fatalf("uid 65534 client: %v; want the connection closed by the peer check (exit 4)", err)
	}
}

func errorsAs(err error, target **exec.ExitError) bool {
	e, ok := err.(*exec.ExitError)
	if ok {
		*target = e
	}
	return ok
}
