// Package netnsexec runs code inside a network namespace.
//
// Network namespaces belong to OS threads, not to goroutines, so the code
// runs on a goroutine of its own with its thread locked. If switching back
// fails, that thread is left locked and the runtime discards it with the
// goroutine instead of reusing it in the wrong namespace. Anything the
// function forks inherits the namespace.
package netnsexec
