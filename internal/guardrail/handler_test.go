package guardrail_test

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"

	"github.com/rampartsec/rampart/internal/guardrail"
)

// TestHandler checks the HTTP side: only POST of application/json is
// reviewed, oversized bodies are refused, and every answer, even an
// error, is an AdmissionReview body with a status.
func TestHandler(t *testing.T) {
	h := &guardrail.Handler{Guardrail: mustGuardrail(t, ""), MaxBodyBytes: 64 << 10}
	review := mustReview(t, admissionv1.Create, newPod("enforcing", "bad", privileged), nil)
	tests := []struct {
		name        string
		method      string
		contentType string
		body        []byte
		wantHTTP    int
		wantCode    int32 // 0: allowed
		wantMsg     string
	}{
		{"review", http.MethodPost, "application/json", review, 200, 403, "pss:privileged"},
		{"charset parameter", http.MethodPost, "application/json; charset=utf-8", review, 200, 403, "pss:privileged"},
		{"allowed review", http.MethodPost, "application/json", mustReview(t, admissionv1.Create, newPod("plain", "ok"), nil), 200, 0, ""},
		{"GET", http.MethodGet, "", nil, 405, 405, "want POST"},
		{"PUT", http.MethodPut, "application/json", review, 405, 405, "want POST"},
		{"YAML", http.MethodPost, "application/yaml", review, 415, 415, "want application/json"},
		{"no content type", http.MethodPost, "", review, 415, 415, "want application/json"},
		{"too large", http.MethodPost, "application/json", append(review, bytes.Repeat([]byte(" "), 64<<10)...), 200, 413, "larger than 65536 bytes"},
		{"garbage", http.MethodPost, "application/json", []byte("<html>"), 200, 400, "not a JSON object"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest(tt.method, "/validate", bytes.NewReader(tt.body))
			if tt.contentType != "" {
				req.Header.Set("Content-Type", tt.contentType)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != tt.wantHTTP {
				t.Errorf("HTTP status = %d, want %d", rec.Code, tt.wantHTTP)
			}
			if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type = %q", ct)
			}
			body, _ := io.ReadAll(rec.Body)
			resp := decodeResponse(t, body)
			if tt.wantCode == 0 {
				if !resp.Allowed {
					t.Errorf("denied: %+v", resp.Result)
				}
				return
			}
			if resp.Allowed || resp.Result.Code != tt.wantCode || !strings.Contains(resp.Result.Message, tt.wantMsg) {
				t.Errorf("got allowed=%v %+v, want code %d with %q", resp.Allowed, resp.Result, tt.wantCode, tt.wantMsg)
			}
		})
	}
}
