package store

import (
	"context"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync/atomic"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// zapLogger returns a zap logger, as etcd's server and client want, that
// passes warnings and errors to l and drops the rest: etcd logs every step
// of its start-up at info level, which would drown Rampart's own lines.
// Once stopping is set, etcd is being shut down on purpose and its lines
// about closed listeners go to debug level.
func zapLogger(l *slog.Logger, stopping *atomic.Bool) *zap.Logger {
	if l == nil {
		l = slog.Default()
	}
	if stopping == nil {
		stopping = new(atomic.Bool)
	}
	return zap.New(&slogCore{l: l.With("component", "etcd"), stopping: stopping})
}

// benign are etcd warnings about choices the embedded store makes on
// purpose; they go to debug level.
var benign = map[string]bool{
	// One unix socket carries gRPC and HTTP; nothing but Rampart dials it.
	"Running http and grpc server on single port. This is not recommended for production.": true,
	// etcd authentication is off: the socket's directory is the access control.
	"simple token is not cryptographically signed": true,
}

// transient are etcd messages that a freshly bootstrapped member logs
// while its first raft term is not yet on disk: its storage-version
// monitor cannot read the schema version "yet" and retries. They say
// nothing about the store's health, so with that error they go to debug
// level too.
var transient = map[string]bool{
	"Failed to detect schema version":  true,
	"failed to update storage version": true,
}

func isTransient(msg string, fields []zapcore.Field) bool {
	if !transient[msg] {
		return false
	}
	for _, f := range fields {
		if err, ok := f.Interface.(error); ok && strings.Contains(err.Error(), "missing term information") {
			return true
		}
	}
	return false
}

// slogCore is a zapcore.Core that writes through log/slog.
type slogCore struct {
	l        *slog.Logger
	stopping *atomic.Bool
	attrs    []slog.Attr
}

func (c *slogCore) Enabled(l zapcore.Level) bool { return l >= zapcore.WarnLevel }

func (c *slogCore) With(fields []zapcore.Field) zapcore.Core {
	return &slogCore{l: c.l, stopping: c.stopping, attrs: append(slices.Clip(c.attrs), attrsOf(fields)...)}
}

func (c *slogCore) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if c.Enabled(e.Level) {
		return ce.AddCore(e, c)
	}
	return ce
}

func (c *slogCore) Write(e zapcore.Entry, fields []zapcore.Field) error {
	level := slog.LevelWarn
	switch {
	case c.stopping.Load() || benign[e.Message] || isTransient(e.Message, fields):
		level = slog.LevelDebug
	case e.Level >= zapcore.ErrorLevel:
		level = slog.LevelError
	}
	attrs := append(slices.Clip(c.attrs), attrsOf(fields)...)
	if e.LoggerName != "" {
		attrs = append(attrs, slog.String("logger", e.LoggerName))
	}
	c.l.LogAttrs(context.Background(), level, e.Message, attrs...)
	return nil
}

func (c *slogCore) Sync() error { return nil }

func attrsOf(fields []zapcore.Field) []slog.Attr {
	if len(fields) == 0 {
		return nil
	}
	enc := zapcore.NewMapObjectEncoder()
	for _, f := range fields {
		f.AddTo(enc)
	}
	attrs := make([]slog.Attr, 0, len(enc.Fields))
	for _, k := range slices.Sorted(maps.Keys(enc.Fields)) {
		attrs = append(attrs, slog.Any(k, enc.Fields[k]))
	}
	return attrs
}
