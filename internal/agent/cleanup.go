package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"syscall"

	"github.com/rampartsec/rampart/internal/datapath"
	"github.com/rampartsec/rampart/internal/endpoint"
)

// lockStateDir takes the node's lock on its state directory, so that two
// nodes never share one and cleanup never runs under a live node. The lock
// lives as long as the returned file.
func lockStateDir(dir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, "node.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("another rampart node is running with state directory %s", dir)
		}
		return nil, err
	}
	return f, nil
}

// Cleanup removes everything the node with this state directory created:
// its endpoints (processes, network namespaces, veths, routes, NAT rules),
// its pinned programs and maps, and the state directory itself. It refuses
// while the node runs.
func Cleanup(ctx context.Context, stateDir string) (string, error) {
	if _, err := os.Stat(stateDir); errors.Is(err, os.ErrNotExist) {
		return fmt.Sprintf("nothing to clean up: %s does not exist", stateDir), nil
	}
	lock, err := lockStateDir(stateDir)
	if err != nil {
		return "", err
	}
	defer lock.Close()
	var errs []error
	mgr, err := endpoint.New(endpoint.Config{
		StateDir: filepath.Join(stateDir, "endpoints"),
		Instance: Instance(stateDir),
		// The pools only matter for new endpoints; cleanup creates none.
		PodCIDR4: defaultCleanupCIDR,
		Logger:   slog.New(slog.DiscardHandler),
	})
	if err == nil {
		err = mgr.Cleanup(ctx)
	}
	if err != nil {
		errs = append(errs, fmt.Errorf("endpoints: %w", err))
	}
	pin := PinDir(stateDir)
	if dp, err := datapath.Open(datapath.Options{PinDir: pin}); err == nil {
		if err := dp.Remove(); err != nil {
			errs = append(errs, fmt.Errorf("pinned maps: %w", err))
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		if err := os.RemoveAll(pin); err != nil {
			errs = append(errs, fmt.Errorf("pinned maps: %w", err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return "", err
	}
	if err := os.RemoveAll(stateDir); err != nil {
		return "", err
	}
	return fmt.Sprintf("removed endpoints, pins under %s and %s", pin, stateDir), nil
}
