package ca

import (
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// RotationPhase is where a root rotation stands. A rotation goes
// RotationStable -> RotationPrepared -> RotationSwitched -> RotationStable;
// docs/ca.md explains why each step waits for the one before to reach every
// workload.
type RotationPhase string

const (
	// RotationStable: one root, which signs and is the whole bundle.
	RotationStable RotationPhase = "stable"
	// RotationPrepared (phase a): a new root is in the bundle but does not
	// sign yet; the old root signs. Workloads pick up the two-root bundle
	// as they renew. The new root starts signing once every leaf issued
	// before the rotation began has expired, since by then every workload
	// has renewed and trusts it.
	RotationPrepared RotationPhase = "prepared"
	// RotationSwitched (phase b): the new root signs; the old root stays in
	// the bundle so that leaves it signed still verify. It is retired
	// (phase c, back to RotationStable) once every leaf it signed has
	// expired.
	RotationSwitched RotationPhase = "switched"
)

// Rotate starts a root rotation: it creates a new self-signed root and
// adds it to the bundle (phase a). The rest happens as time passes, with no
// further call: the new root starts signing when every leaf issued before
// now has expired (phase b), and the old root leaves the bundle when every
// leaf it signed has expired (phase c). Promote and FinishRotation take
// those steps early. Rotate fails with ErrRotationInProgress while a
// rotation is under way and with ErrPluginManaged for a plug-in CA.
func (a *Authority) Rotate() (Status, error) {
	return a.rotationStep("rotate", rotate)
}

func rotate(s *selfSigned, now time.Time, v rootView) (Status, error) {
	if p := v.rotation(); p != RotationStable {
		return s.status(now), fmt.Errorf("ca: rotate: %w (phase %s)", ErrRotationInProgress, p)
	}
	active := s.roots[v.signer]
	e, err := s.createRoot(s.roots[len(s.roots)-1].rec.generation()+1, now)
	if err != nil {
		return Status{}, err
	}
	if active.rec.LeavesUntil.After(now) {
		e.rec.SignFrom = active.rec.LeavesUntil
	}
	if err := s.save(append(s.records(), e.rec)); err != nil {
		os.Remove(filepath.Join(s.dir, e.rec.keyFile()))
		os.Remove(filepath.Join(s.dir, e.rec.certFile()))
		return Status{}, err
	}
	s.roots = append(s.roots, e)
	if err := s.maintain(now); err != nil {
		return Status{}, err
	}
	return s.status(now), nil
}

// Promote makes the new root of a prepared rotation sign now, without
// waiting for the leaves issued before the rotation to expire (phase b).
// It does nothing once the new root signs, and fails with ErrNoRotation
// when no rotation is in progress.
// A workload that has not renewed since the rotation began does not trust
// the new root yet and refuses leaves it signs until it renews: promote
// early only when every workload is known to have renewed, for example
// after a restart of all of them.
func (a *Authority) Promote() (Status, error) {
	return a.rotationStep("promote", promote)
}

func promote(s *selfSigned, now time.Time, v rootView) (Status, error) {
	switch v.rotation() {
	case RotationStable:
		return s.status(now), fmt.Errorf("ca: promote: %w", ErrNoRotation)
	case RotationSwitched:
		return s.status(now), nil // already promoted
	}
	recs := s.records()
	for i := v.signer + 1; i < len(recs); i++ {
		if recs[i].SignFrom.After(now) {
			recs[i].SignFrom = now
		}
	}
	return s.settle(recs, now)
}

// FinishRotation ends a rotation now: the new root signs, if it did not
// yet, and the old root leaves the bundle (phase c). Leaves the old root
// signed that have not expired stop verifying at peers as soon as those
// get the new bundle: finish early only when those leaves are known to be
// gone, or to cut off a compromised root.
func (a *Authority) FinishRotation() (Status, error) {
	return a.rotationStep("finish rotation", finishRotation)
}

func finishRotation(s *selfSigned, now time.Time, v rootView) (Status, error) {
	if v.rotation() == RotationStable {
		return s.status(now), fmt.Errorf("ca: finish rotation: %w", ErrNoRotation)
	}
	recs := s.records()
	last := len(recs) - 1
	if recs[last].SignFrom.After(now) {
		recs[last].SignFrom = now
	}
	for i := 0; i < last; i++ {
		if !recs[i].Retired && (recs[i].RetireAt.IsZero() || recs[i].RetireAt.After(now)) {
			recs[i].RetireAt = now
		}
	}
	return s.settle(recs, now)
}

// rotationStep runs one of the steps above under the authority's lock, on
// the self-signed state brought up to date first (phases that are due have
// happened), so that each step decides on the phase the CA is really in.
func (a *Authority) rotationStep(name string, step func(*selfSigned, time.Time, rootView) (Status, error)) (Status, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	s, ok := a.be.(*selfSigned)
	if !ok {
		return Status{}, fmt.Errorf("ca: %s: %w", name, ErrPluginManaged)
	}
	now := a.opts.Clock.Now()
	if err := s.maintain(now); err != nil {
		return Status{}, err
	}
	return step(s, now, s.view(now))
}

// settle commits recs changed by a rotation step, lets the phases that are
// due follow at once, and reports the result.
func (s *selfSigned) settle(recs []rootRecord, now time.Time) (Status, error) {
	if err := s.commit(recs); err != nil {
		return Status{}, err
	}
	if err := s.maintain(now); err != nil {
		return Status{}, err
	}
	return s.status(now), nil
}
