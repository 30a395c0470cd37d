package endpoint

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"regexp"
	"strconv"
)

// MaxInstanceLen is the longest instance name: "rp" + instance + four hex
// digits of the endpoint id must fit the kernel's 15-byte interface names.
const MaxInstanceLen = 9

var instanceRE = regexp.MustCompile(`^[a-z][a-z0-9]*$`)

// ValidateInstance checks an instance name: 1-9 characters [a-z0-9]
// starting with a letter. Without '-' or '.' in it, "<instance>-" is a
// prefix no other instance's names can start with.
func ValidateInstance(s string) error {
	if len(s) == 0 || len(s) > MaxInstanceLen || !instanceRE.MatchString(s) {
		return fmt.Errorf("%w instance %q: want 1-%d characters [a-z0-9] starting with a letter", ErrInvalid, s, MaxInstanceLen)
	}
	return nil
}

// HostIfName is the name of the host side of endpoint id's veth:
// "rp" + instance + the id as four hex digits, at most 15 bytes. The fixed
// width keeps names of different instances apart: "rpa" + "b123" and
// "rpab" + "1234" differ in length.
func HostIfName(instance string, id uint16) string {
	return fmt.Sprintf("rp%s%04x", instance, id)
}

// parseHostIfName returns the endpoint id of a host interface name of
// instance, or false if the name is not one.
func parseHostIfName(instance, name string) (uint16, bool) {
	prefix := "rp" + instance
	if len(name) != len(prefix)+4 || name[:len(prefix)] != prefix {
		return 0, false
	}
	id, err := strconv.ParseUint(name[len(prefix):], 16, 16)
	if err != nil || id == 0 {
		return 0, false
	}
	return uint16(id), true
}

// maxNetNSName keeps `ip netns list` readable; longer names are shortened
// with a hash (the full form can exceed the 255-byte file name limit).
const maxNetNSName = 64

// NetNSName is the name of an endpoint's network namespace under
// NetNSDir: "<instance>-<name>.<namespace>", reading like the endpoint's
// DNS name. Namespaces cannot contain '.', so the last '.' separates the
// two and distinct keys give distinct names. Names longer than 64 bytes
// keep their first 53 bytes and end in '~' and 10 hex digits of the
// SHA-256 of the full name; the Manager creates the mount exclusively,
// so even a hash collision fails instead of sharing a namespace.
func NetNSName(instance string, k Key) string {
	full := instance + "-" + k.Name + "." + k.Namespace
	if len(full) <= maxNetNSName {
		return full
	}
	sum := sha256.Sum256([]byte(full))
	return full[:maxNetNSName-11] + "~" + hex.EncodeToString(sum[:5])
}

// netnsPrefix is what every namespace name of instance starts with.
func netnsPrefix(instance string) string { return instance + "-" }

// linkAlias is the alias (IFLA_IFALIAS) set on an endpoint's host veth, so
// `ip link` shows whose it is and Cleanup recognises links of its instance
// by more than their name. Aliases are limited to 255 bytes.
func linkAlias(instance string, k Key) string {
	a := aliasPrefix(instance) + k.String()
	if len(a) > 255 {
		a = a[:255]
	}
	return a
}

func aliasPrefix(instance string) string { return "rampart:" + instance + ":" }

// NFTableName is the inet nftables table that holds the instance's
// masquerade rules.
func NFTableName(instance string) string { return "rampart-" + instance }
