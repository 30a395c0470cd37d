//go:build !linux

package agent

import (
	"github.com/rampartsec/rampart/internal/datapath"
	"github.com/rampartsec/rampart/internal/endpoint"
	"github.com/rampartsec/rampart/internal/policy"
)

func hostIdentities(map[endpoint.Key]*policy.Endpoint) []datapath.IdentityEntry { return nil }
