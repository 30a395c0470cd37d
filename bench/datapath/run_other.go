//go:build !linux

package main

import (
	"context"
	"errors"
)

var errNotLinux = errors.New("the datapath benchmark needs Linux: network namespaces, TCX and iptables")

func run(context.Context, options) (*report, error) { return nil, errNotLinux }

func loadgenMain([]string) int {
	println(errNotLinux.Error())
	return 1
}

// loadgenCmd names the hidden load generator subcommand.
const loadgenCmd = "__loadgen"
