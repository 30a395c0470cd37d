package endpoint

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// Files in the state directory.
const (
	ipamFile     = "ipam.json"
	hostFile     = "host.json"
	lockFile     = "lock"
	endpointsDir = "endpoints"
	logsDir      = "logs"
)

// writeFileAtomic replaces path with data, mode 0600: it writes a
// temporary file in the same directory, syncs it, renames it over path and
// syncs the directory, so a crash leaves either the old or the new file.
func writeFileAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // no-op after a successful rename
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	if err := writeFileAtomic(path, append(b, '\n')); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// readJSON decodes path into v; a missing file is reported with
// fs.ErrNotExist so callers can start empty.
func readJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

func endpointFile(stateDir string, id uint16) string {
	return filepath.Join(stateDir, endpointsDir, fmt.Sprintf("%04x.json", id))
}

func logFile(stateDir string, id uint16) string {
	return filepath.Join(stateDir, logsDir, fmt.Sprintf("%04x.log", id))
}

// loadEndpoints reads every endpoints/<id>.json. A record that cannot be
// read is an error naming the file: silently dropping it would leak its
// kernel objects and addresses.
func loadEndpoints(stateDir string) ([]Endpoint, error) {
	dir := filepath.Join(stateDir, endpointsDir)
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var eps []Endpoint
	for _, de := range ents {
		name := de.Name()
		if !strings.HasSuffix(name, ".json") || strings.HasPrefix(name, ".") {
			continue
		}
		id, err := strconv.ParseUint(strings.TrimSuffix(name, ".json"), 16, 16)
		if err != nil || id == 0 {
			continue
		}
		var ep Endpoint
		if err := readJSON(filepath.Join(dir, name), &ep); err != nil {
			return nil, err
		}
		if ep.ID != uint16(id) {
			return nil, fmt.Errorf("%s: id %d does not match the file name", filepath.Join(dir, name), ep.ID)
		}
		eps = append(eps, ep)
	}
	sortEndpoints(eps)
	return eps, nil
}

func sortEndpoints(eps []Endpoint) {
	sort.Slice(eps, func(i, j int) bool {
		a, b := eps[i].Key(), eps[j].Key()
		if a.Namespace != b.Namespace {
			return a.Namespace < b.Namespace
		}
		return a.Name < b.Name
	})
}
