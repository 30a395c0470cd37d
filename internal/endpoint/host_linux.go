package endpoint

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
)

// hostState is host.json: what this Manager is and which host settings
// outside its own interfaces it changed, with their previous values, so
// Cleanup can put them back.
type hostState struct {
	Version  int             `json:"version"`
	Instance string          `json:"instance"`
	Changed  []sysctlChanged `json:"changed,omitempty"`
}

type sysctlChanged struct {
	Key string `json:"key"` // below /proc/sys/net, e.g. "ipv4/conf/eth0/forwarding"
	Was string `json:"was"`
}

const hostVersion = 1

func loadHostState(stateDir, instance string) (hostState, error) {
	var h hostState
	path := filepath.Join(stateDir, hostFile)
	err := readJSON(path, &h)
	if errors.Is(err, fs.ErrNotExist) {
		return hostState{Version: hostVersion, Instance: instance}, nil
	}
	if err != nil {
		return h, err
	}
	if h.Instance != instance {
		return h, errors.New(path + ": state belongs to instance " + h.Instance + ", not " + instance)
	}
	return h, nil
}

// uplinkSysctls returns the settings that let replies from outside reach
// endpoints: IPv4 forwarding on each uplink and IPv6 force_forwarding
// there, or on kernels before 6.17 (no per-interface IPv6 forwarding)
// the global IPv6 forwarding switch, which the veths need as well.
func uplinkSysctls(uplinks []string, v4, v6 bool) [][2]string {
	var s [][2]string
	force := hasForceForwarding()
	for _, u := range uplinks {
		if v4 {
			s = append(s, [2]string{"ipv4/conf/" + u + "/forwarding", "1"})
		}
		if v6 && force {
			s = append(s, [2]string{"ipv6/conf/" + u + "/force_forwarding", "1"})
		}
	}
	if v6 && !force {
		s = append(s, [2]string{"ipv6/conf/all/forwarding", "1"})
	}
	return s
}

// ensureHost turns on forwarding on the uplinks, recording each value it
// changes in host.json before changing it. The caller holds m.mu.
func (m *Manager) ensureHostLocked() error {
	uplinks := m.cfg.Uplinks
	if len(uplinks) == 0 {
		var err error
		if uplinks, err = defaultRouteLinks(); err != nil {
			return err
		}
		if len(uplinks) == 0 && !m.warnedNoUplink {
			m.warnedNoUplink = true
			m.log.Warn("no default route and no uplinks configured: endpoints reach only the host and each other")
		}
	}
	v4, v6 := m.ipam.Pools()
	for _, s := range uplinkSysctls(uplinks, v4.IsValid(), v6.IsValid()) {
		cur, err := readSysctl(s[0])
		if err != nil {
			return err
		}
		if cur == s[1] {
			continue
		}
		recorded := false
		for _, c := range m.host.Changed {
			recorded = recorded || c.Key == s[0]
		}
		if !recorded {
			m.host.Changed = append(m.host.Changed, sysctlChanged{Key: s[0], Was: cur})
			if err := writeJSON(filepath.Join(m.cfg.StateDir, hostFile), m.host); err != nil {
				return err
			}
		}
		if err := writeSysctl(s[0], s[1]); err != nil {
			return err
		}
		m.log.Info("enabled forwarding", "sysctl", s[0])
	}
	return nil
}

// restoreHostLocked puts back the host settings this Manager changed,
// unless another instance still has endpoints here and may need them.
func (m *Manager) restoreHostLocked() error {
	others, err := anyRampartLinks()
	if err != nil {
		return err
	}
	if others {
		m.log.Info("leaving forwarding on: other Rampart endpoints remain")
		return nil
	}
	var errs []error
	for i := len(m.host.Changed) - 1; i >= 0; i-- {
		c := m.host.Changed[i]
		if _, err := os.Stat(sysctlPath(c.Key)); err != nil {
			continue // the interface is gone
		}
		if err := writeSysctl(c.Key, c.Was); err != nil {
			errs = append(errs, err)
		}
	}
	m.host.Changed = nil
	return errors.Join(errs...)
}
