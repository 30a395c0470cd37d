package main

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Parsers of /proc files, kept apart from the reading so that they are
// tested on every system.

// parseSchedstat reads the first field of a schedstat file: time spent on
// the CPU, in nanoseconds.
func parseSchedstat(b []byte) (time.Duration, error) {
	f := bytes.Fields(b)
	if len(f) < 1 {
		return 0, fmt.Errorf("schedstat %q: no fields", b)
	}
	ns, err := strconv.ParseInt(string(f[0]), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("schedstat %q: %w", b, err)
	}
	return time.Duration(ns), nil
}

// memInfo is what /proc/<pid>/smaps_rollup says of a process's memory,
// in bytes.
type memInfo struct {
	// rss is the resident set; private the part of it no other process
	// maps (Private_Clean + Private_Dirty).
	rss, private uint64
}

func parseSmapsRollup(b []byte) (memInfo, error) {
	var m memInfo
	seen := 0
	for _, line := range strings.Split(string(b), "\n") {
		name, _, ok := strings.Cut(line, ":")
		if !ok || name != "Rss" && name != "Private_Clean" && name != "Private_Dirty" {
			continue
		}
		v, err := parseKB(line)
		if err != nil {
			return memInfo{}, fmt.Errorf("smaps_rollup: %w", err)
		}
		if name == "Rss" {
			m.rss = v
		} else {
			m.private += v
		}
		seen++
	}
	if seen != 3 {
		return memInfo{}, fmt.Errorf("smaps_rollup: want Rss, Private_Clean and Private_Dirty, found %d of them", seen)
	}
	return m, nil
}

// parseKB parses "Name:   1234 kB" into bytes.
func parseKB(line string) (uint64, error) {
	f := strings.Fields(line)
	if len(f) != 3 || f[2] != "kB" {
		return 0, fmt.Errorf("unexpected line %q", line)
	}
	kb, err := strconv.ParseUint(f[1], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("line %q: %w", line, err)
	}
	return kb * 1024, nil
}

// parentPID reads the parent's pid from /proc/<pid>/stat. The command
// name in parentheses may contain spaces and parentheses, so the fields
// are counted after its last ')'.
func parentPID(stat []byte) (int, error) {
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, fmt.Errorf("stat %q: no command name", stat)
	}
	f := bytes.Fields(stat[i+1:])
	if len(f) < 2 {
		return 0, fmt.Errorf("stat %q: too few fields", stat)
	}
	return strconv.Atoi(string(f[1]))
}
