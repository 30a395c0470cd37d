package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

// corpus is the set of manifests under comparison and the finding IDs
// expect.yaml says Rampart reports on each.
type corpus struct {
	dir    string
	names  []string // base names, sorted
	expect map[string][]string
}

func loadCorpus(dir string) (*corpus, error) {
	c := &corpus{dir: dir}
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil {
		return nil, err
	}
	for _, f := range files {
		if filepath.Base(f) != "expect.yaml" {
			c.names = append(c.names, filepath.Base(f))
		}
	}
	if len(c.names) == 0 {
		return nil, fmt.Errorf("corpus %s: no manifests", dir)
	}
	slices.Sort(c.names)
	if data, err := os.ReadFile(filepath.Join(dir, "expect.yaml")); err == nil {
		if err := yaml.Unmarshal(data, &c.expect); err != nil {
			return nil, fmt.Errorf("%s: %w", filepath.Join(dir, "expect.yaml"), err)
		}
	}
	return c, nil
}

// writeUnique writes every manifest into dir with each object's name and
// namespace suffixed by the manifest's index, so that all of them can be
// audited in one invocation: Rampart refuses an input that defines the same
// object twice, and the corpus reuses names (namespace "shop", Deployment
// "api") from one scenario to the next. The documents stay the same size
// and shape.
func (c *corpus) writeUnique(dir string) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	for i, name := range c.names {
		data, err := os.ReadFile(filepath.Join(c.dir, name))
		if err != nil {
			return "", err
		}
		suffix := fmt.Sprintf("-m%02d", i)
		var out bytes.Buffer
		dec := yaml.NewDecoder(bytes.NewReader(data))
		enc := yaml.NewEncoder(&out)
		for {
			var doc map[string]any
			err := dec.Decode(&doc)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return "", fmt.Errorf("%s: %w", name, err)
			}
			if doc == nil {
				continue
			}
			if md, ok := doc["metadata"].(map[string]any); ok {
				if n, ok := md["name"].(string); ok {
					md["name"] = n + suffix
				}
				if ns, ok := md["namespace"].(string); ok {
					md["namespace"] = ns + suffix
				}
			}
			if err := enc.Encode(doc); err != nil {
				return "", err
			}
		}
		enc.Close()
		if err := os.WriteFile(filepath.Join(dir, name), out.Bytes(), 0o644); err != nil {
			return "", err
		}
	}
	return dir, nil
}

// moduleDir returns the root of this module, where the default corpus is.
func moduleDir() (string, error) {
	out, err := execOutput("go", "list", "-m", "-f", "{{.Dir}}")
	if err != nil {
		return "", fmt.Errorf("find the module root (run from the repository): %w", err)
	}
	return strings.TrimSpace(out), nil
}

func execOutput(bin string, args ...string) (string, error) {
	out, err := exec.Command(bin, args...).Output()
	return string(out), err
}
