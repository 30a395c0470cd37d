package resource

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Load reads the inputs named by paths as `-f` does: a file, a directory
// (walked recursively for *.yaml, *.yml and *.json, in lexical order) or "-"
// for stdin. Reading stops at the first I/O error, which names the path.
func Load(paths []string, stdin io.Reader) ([]Input, error) {
	if len(paths) == 0 {
		return nil, fmt.Errorf("no input: give -f with a file, a directory or -")
	}
	var inputs []Input
	for _, p := range paths {
		if p == "-" {
			data, err := io.ReadAll(stdin)
			if err != nil {
				return nil, fmt.Errorf("read stdin: %w", err)
			}
			inputs = append(inputs, Input{Name: "-", Data: data})
			continue
		}
		st, err := os.Stat(p)
		if err != nil {
			return nil, err
		}
		if !st.IsDir() {
			data, err := os.ReadFile(p)
			if err != nil {
				return nil, err
			}
			inputs = append(inputs, Input{Name: p, Data: data})
			continue
		}
		var files []string
		err = filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if !d.IsDir() && isManifest(path) {
				files = append(files, path)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		slices.Sort(files)
		for _, f := range files {
			data, err := os.ReadFile(f)
			if err != nil {
				return nil, err
			}
			inputs = append(inputs, Input{Name: f, Data: data})
		}
	}
	return inputs, nil
}

func isManifest(path string) bool {
	switch strings.ToLower(filepath.Ext(path)) {
	case ".yaml", ".yml", ".json":
		return true
	}
	return false
}

// LoadAndDecode is Load followed by Decode.
func LoadAndDecode(paths []string, stdin io.Reader) ([]*Object, error) {
	inputs, err := Load(paths, stdin)
	if err != nil {
		return nil, err
	}
	return Decode(inputs)
}
