package ca

import "time"

// Clock is where the Authority and the Source read the time and get their
// timers. Tests pass a fake so that certificate lifetimes of hours pass in
// microseconds and renewal schedules can be checked exactly; a nil Clock in
// the options means the system clock.
type Clock interface {
	Now() time.Time
	// NewTimer returns a timer that fires once, d after now.
	NewTimer(d time.Duration) Timer
}

// Timer is the part of *time.Timer the package uses.
type Timer interface {
	// C returns the channel the timer's time is sent on when it fires.
	C() <-chan time.Time
	// Stop prevents the timer from firing; it reports whether it did.
	Stop() bool
}

// SystemClock returns the Clock backed by the time package.
func SystemClock() Clock { return systemClock{} }

type systemClock struct{}

func (systemClock) Now() time.Time                 { return time.Now() }
func (systemClock) NewTimer(d time.Duration) Timer { return systemTimer{time.NewTimer(d)} }

type systemTimer struct{ t *time.Timer }

func (t systemTimer) C() <-chan time.Time { return t.t.C }
func (t systemTimer) Stop() bool          { return t.t.Stop() }

func orSystemClock(c Clock) Clock {
	if c == nil {
		return systemClock{}
	}
	return c
}
