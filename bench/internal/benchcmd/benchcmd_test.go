package benchcmd_test

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/rampartsec/rampart/bench/internal/benchcmd"
)

func TestSplitList(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
	}{
		{"a,b", []string{"a", "b"}},
		{" a , ,b,", []string{"a", "b"}},
		{"", nil},
	} {
		if got := benchcmd.SplitList(tc.in); !slices.Equal(got, tc.want) {
			t.Errorf("SplitList(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestMainExitCodes(t *testing.T) {
	parse := func(args []string, _ io.Writer) (string, error) {
		switch {
		case len(args) == 0:
			return "", nil
		case args[0] == "-h":
			return "", flag.ErrHelp
		case args[0] == "bad":
			return "", errors.New("bad flag")
		}
		return args[0], nil
	}
	run := func(_ context.Context, o string) (string, error) {
		if o == "fail" {
			return "", errors.New("it broke")
		}
		return "report " + o, nil
	}
	report := func(r string, w io.Writer) { io.WriteString(w, r) }
	for _, tc := range []struct {
		args       []string
		code       int
		out, errOf string
	}{
		{args: []string{"ok"}, code: 0, out: "report ok"},
		{args: []string{"-h"}, code: 0},
		{args: []string{"bad"}, code: 2, errOf: "x: bad flag"},
		{args: []string{"fail"}, code: 1, errOf: "x: it broke"},
	} {
		var stdout, stderr bytes.Buffer
		code := benchcmd.Main("x", tc.args, &stdout, &stderr, parse, run, report, "cleaned up")
		if code != tc.code || stdout.String() != tc.out || !strings.Contains(stderr.String(), tc.errOf) {
			t.Errorf("Main(%q) = %d, stdout %q, stderr %q; want %d, %q, %q", tc.args, code, stdout.String(), stderr.String(), tc.code, tc.out, tc.errOf)
		}
	}
}
