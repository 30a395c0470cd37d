package cli

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestProbeGet checks the HTTP client the mesh walkthrough uses: status
// and body printed, exit 0 only on 2xx, headers sent.
func TestProbeGet(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Env") != "prod" {
			http.Error(w, "RBAC: access denied", http.StatusForbidden)
			return
		}
		helloHandler(w, r)
	}))
	defer srv.Close()
	for _, tc := range []struct {
		args     []string
		code     int
		wantText string
	}{
		{[]string{"probe", "get", srv.URL + "/a", "--header", "X-Env: prod"}, 0, "200 hello from "},
		{[]string{"probe", "get", srv.URL + "/a"}, 1, "403 RBAC: access denied"},
		{[]string{"probe", "get", srv.URL, "--header", "no-colon"}, 2, ""},
	} {
		var out, errb bytes.Buffer
		code := Main(tc.args, strings.NewReader(""), &out, &errb)
		if code != tc.code || !strings.Contains(out.String(), tc.wantText) {
			t.Errorf("%v: exit %d, out %q (err %q); want exit %d with %q", tc.args, code, out.String(), errb.String(), tc.code, tc.wantText)
		}
	}
}
