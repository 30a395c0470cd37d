package host

import (
	"context"
	"errors"
	"runtime"
	"strings"
	"testing"
	"time"
)

func TestSleep(t *testing.T) {
	if err := Sleep(context.Background(), time.Millisecond); err != nil {
		t.Errorf("Sleep = %v, want nil", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	start := time.Now()
	if err := Sleep(ctx, time.Hour); !errors.Is(err, context.Canceled) || time.Since(start) > time.Second {
		t.Errorf("Sleep on a cancelled context = %v after %v, want context.Canceled at once", err, time.Since(start))
	}
}

func TestMachine(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("reads /proc")
	}
	if r := KernelRelease(); r == "unknown" || r == "" {
		t.Errorf("KernelRelease() = %q", r)
	}
	if l := LoadAverage(); len(strings.Fields(l)) != 3 {
		t.Errorf("LoadAverage() = %q, want three numbers", l)
	}
}
