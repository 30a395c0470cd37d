//go:build !linux

package endpoint

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"runtime"
)

// errOS names the operating system so a user sees why endpoints are off.
var errOS = fmt.Errorf("%w (GOOS=%s; endpoints need Linux network namespaces)", ErrNotSupported, runtime.GOOS)

// Manager is unavailable on this operating system; New always fails, so
// none of its methods can be reached with a usable value.
type Manager struct{}

// New returns ErrNotSupported on this operating system.
func New(Config) (*Manager, error) { return nil, errOS }

func (*Manager) SetLogger(*slog.Logger)                                     {}
func (*Manager) Close() error                                               { return errOS }
func (*Manager) Create(context.Context, Spec) (Endpoint, error)             { return Endpoint{}, errOS }
func (*Manager) Start(context.Context, Endpoint, Command) (Endpoint, error) { return Endpoint{}, errOS }
func (*Manager) Stop(context.Context, Key) error                            { return errOS }
func (*Manager) Delete(context.Context, Key) error                          { return errOS }
func (*Manager) Logs(Key) (io.ReadCloser, error)                            { return nil, errOS }
func (*Manager) Get(Key) (Endpoint, error)                                  { return Endpoint{}, errOS }
func (*Manager) List() []Endpoint                                           { return nil }
func (*Manager) Config() Config                                             { return Config{} }
func (*Manager) Restore(context.Context) (RestoreReport, error)             { return RestoreReport{}, errOS }
func (*Manager) Cleanup(context.Context) error                              { return errOS }
