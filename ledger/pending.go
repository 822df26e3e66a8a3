package ledger

import "context"

// Pending is an op on its way through the poster.
type Pending struct {
	op   Op
	ctx  context.Context
	done chan struct{}
	out  Outcome
	err  error
}

// Done is closed once the op's batch committed or failed.
func (p *Pending) Done() <-chan struct{} { return p.done }

// Result returns the outcome; call it after Done is closed.
func (p *Pending) Result() (Outcome, error) { return p.out, p.err }

// Wait waits for the outcome. If ctx ends first, the op may still be
// applied: retrying with the same idempotency key tells.
func (p *Pending) Wait(ctx context.Context) (Outcome, error) {
	select {
	case <-p.done:
		return p.out, p.err
	case <-ctx.Done():
		return Outcome{}, ctx.Err()
	}
}

func (p *Pending) finish(out Outcome, err error) {
	p.out, p.err = out, err
	close(p.done)
}

// WaitPosted waits for every pending op and counts those this call posted
// (not replays of an earlier one): what a sweeper reports as done.
func WaitPosted(ctx context.Context, pend []*Pending) (int, error) {
	n := 0
	for _, p := range pend {
		out, err := p.Wait(ctx)
		if err != nil {
			return n, err
		}
		if out.Status == StatusPosted && !out.Replayed {
			n++
		}
	}
	return n, nil
}
