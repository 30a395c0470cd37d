package cli

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/rampartsec/rampart/internal/policy"
	"github.com/rampartsec/rampart/internal/resource"
)

// loadObjects decodes -f inputs. On decode errors it prints every problem to
// errw and returns failed, so the command exits 1 with the list as its
// output.
func loadObjects(paths []string, in io.Reader, errw io.Writer) ([]*resource.Object, error) {
	if len(paths) == 0 {
		return nil, UsageError("-f is required (a file, a directory or - for stdin)")
	}
	objs, err := resource.LoadAndDecode(paths, in)
	var list resource.ErrorList
	if errors.As(err, &list) {
		for _, e := range list {
			fmt.Fprintln(errw, e)
		}
		fmt.Fprintf(errw, "%d error(s); nothing was used\n", len(list))
		return nil, failed
	}
	if err != nil {
		return nil, &ExitError{Code: 1, Err: err}
	}
	return objs, nil
}

func loadRepository(ctx context.Context, paths []string, in io.Reader, errw io.Writer) (*policy.Repository, []*resource.Object, error) {
	objs, err := loadObjects(paths, in, errw)
	if err != nil {
		return nil, nil, err
	}
	repo, err := policy.Build(ctx, objs, nil)
	if err != nil {
		return nil, nil, &ExitError{Code: 1, Err: err}
	}
	return repo, objs, nil
}
