// Package benchcmd holds what the benchmark commands under bench/ share:
// the handling of flags, signals and exit codes in their main functions,
// comma-separated list flags, and progress lines sent to a test's log.
package benchcmd

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"testing"
)

// Main runs a benchmark command and returns its exit code: parse reads
// the flags (a help request exits 0, a bad flag 2); run measures under a
// context that Ctrl-C and SIGTERM cancel, after which it must have
// cleaned up what it started (exit 130, with interrupted as the message);
// any other error exits 1; otherwise report prints the result to stdout.
// Messages are prefixed with name.
func Main[O, R any](name string, args []string, stdout, stderr io.Writer,
	parse func([]string, io.Writer) (O, error),
	run func(context.Context, O) (R, error),
	report func(R, io.Writer),
	interrupted string,
) int {
	o, err := parse(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, name+":", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	r, err := run(ctx, o)
	if err != nil {
		if ctx.Err() != nil {
			fmt.Fprintln(stderr, name+": interrupted;", interrupted)
			return 130
		}
		fmt.Fprintln(stderr, name+":", err)
		return 1
	}
	report(r, stdout)
	return 0
}

// SplitList splits a comma-separated flag value, dropping blanks.
func SplitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// LogWriter returns a writer that sends each progress line to t's log.
func LogWriter(t testing.TB) io.Writer { return logWriter{t} }

type logWriter struct{ t testing.TB }

func (w logWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
