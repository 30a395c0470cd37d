package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// The proxies' cost is read from /proc, the same way for Rampart's Go
// processes and for nginx's master and worker processes.

// cpuTime returns the CPU time the threads of pid have run so far: the
// sum of sum_exec_runtime (nanoseconds) from each thread's schedstat, which
// is exact where /proc/<pid>/stat counts clock ticks of 10 ms. Time of
// threads that have exited is lost; neither Go nor nginx's single-threaded
// worker ends threads while serving.
func cpuTime(pid int) (time.Duration, error) {
	dir := fmt.Sprintf("/proc/%d/task", pid)
	tasks, err := os.ReadDir(dir)
	if err != nil {
		return 0, fmt.Errorf("cpu of %d: %w", pid, err)
	}
	var total time.Duration
	for _, t := range tasks {
		b, err := os.ReadFile(filepath.Join(dir, t.Name(), "schedstat"))
		if err != nil {
			if os.IsNotExist(err) {
				continue // the thread ended meanwhile
			}
			return 0, fmt.Errorf("cpu of %d: %w", pid, err)
		}
		ns, err := parseSchedstat(b)
		if err != nil {
			return 0, fmt.Errorf("cpu of %d/%s: %w", pid, t.Name(), err)
		}
		total += ns
	}
	return total, nil
}

// readMem reads /proc/<pid>/smaps_rollup.
func readMem(pid int) (memInfo, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		return memInfo{}, fmt.Errorf("memory of %d: %w", pid, err)
	}
	return parseSmapsRollup(b)
}

// groupMemory is the memory of a process and its children counted as if
// they ran alone: the resident set of the first (the Go proxy, nginx's
// master) plus the private memory of the others (nginx's worker), whose
// shared pages are mostly the master's, mapped before the fork. Summing
// resident sets would count those pages twice; proportional sets (PSS)
// would divide the pages of the benchmark binary among all its
// re-executed children and of libraries among unrelated processes.
func groupMemory(pids []int) (float64, error) {
	var total uint64
	for i, pid := range pids {
		m, err := readMem(pid)
		if err != nil {
			return 0, err
		}
		if i == 0 {
			total += m.rss
		} else {
			total += m.private
		}
	}
	return float64(total), nil
}

// childrenOf returns the processes whose parent is ppid.
func childrenOf(ppid int) ([]int, error) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	var out []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue // gone meanwhile
		}
		if p, err := parentPID(b); err == nil && p == ppid {
			out = append(out, pid)
		}
	}
	return out, nil
}
