package endpoint

// Internals the external tests use to fake leftovers of a crash.
var (
	CreateNetNSForTest = createNetNS
	IsNetNSForTest     = isNetNS
)
