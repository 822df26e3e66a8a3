package main

import (
	"context"
	"sync"
	"time"
)

// parallel calls f(ctx, i) for every i in [0, n) from at most workers
// goroutines. The first error cancels the rest and is returned.
func parallel(ctx context.Context, n, workers int, f func(ctx context.Context, i int) error) error {
	_, err := parallelUntil(ctx, n, workers, time.Time{}, f)
	return err
}

// parallelUntil is parallel that hands out no i once deadline has passed
// (a zero deadline never passes). Every i handed out runs to the end: the
// deadline stops new calls, never one in flight. sent says how many were
// handed out, [0, sent).
func parallelUntil(ctx context.Context, n, workers int, deadline time.Time, f func(ctx context.Context, i int) error) (sent int, err error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(workers, n) {
		wg.Go(func() {
			for i := range next {
				if err := f(ctx, i); err != nil {
					cancel(err)
				}
			}
		})
	}
feed:
	for i := range n {
		if !deadline.IsZero() && time.Now().After(deadline) {
			break
		}
		select {
		case next <- i:
			sent++
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	if err := context.Cause(ctx); err != nil {
		return sent, err
	}
	return sent, nil
}
