package proxy_test

import (
	"log/slog"
	"testing"
)

// testLogger sends the proxy's log to the test's, visible with -v or on
// failure. Benchmarks and fuzz targets discard it: the first would
// measure it, and the second may not log through f from its inputs.
func testLogger(t testing.TB) *slog.Logger {
	switch t.(type) {
	case *testing.B, *testing.F:
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(b []byte) (int, error) {
	w.t.Helper()
	w.t.Log(string(b[:len(b)-1]))
	return len(b), nil
}
