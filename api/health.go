package api

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/creditledger/creditledger/api/problem"
)

// readyTimeout bounds a readiness probe: a dependency that hangs is down.
const readyTimeout = 2 * time.Second

// Check is one dependency readiness looks at.
type Check struct {
	Name string // "database", "nats": what /readyz names when it fails
	Func func(ctx context.Context) error
}

// NotReadyError lists the dependencies whose checks failed.
type NotReadyError struct {
	Failed []string // check names
	Errs   []error  // their errors, for the log
}

func (e *NotReadyError) Error() string {
	parts := make([]string, len(e.Failed))
	for i, name := range e.Failed {
		parts[i] = fmt.Sprintf("%s: %v", name, e.Errs[i])
	}
	return "not ready: " + strings.Join(parts, "; ")
}

func (e *NotReadyError) Unwrap() []error { return e.Errs }

// Readiness runs the checks concurrently and returns a *NotReadyError if any
// fails. It is what Config.Ready is made of:
//
//	Ready: api.Readiness(
//		api.Check{Name: "database", Func: db.Pool.Ping},
//		api.Check{Name: "nats", Func: natsCheck},
//	)
func Readiness(checks ...Check) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		errs := make([]error, len(checks))
		var wg sync.WaitGroup
		for i, ch := range checks {
			wg.Go(func() { errs[i] = ch.Func(ctx) })
		}
		wg.Wait()
		var nr NotReadyError
		for i, err := range errs {
			if err != nil {
				nr.Failed = append(nr.Failed, checks[i].Name)
				nr.Errs = append(nr.Errs, err)
			}
		}
		if len(nr.Failed) > 0 {
			return &nr
		}
		return nil
	}
}

func (s *server) healthz(c *fiber.Ctx) error {
	return c.JSON(fiber.Map{"status": "ok"})
}

// readyz says which dependency is down, never why: the endpoint is public,
// and the why (addresses, driver messages) goes to the log.
func (s *server) readyz(c *fiber.Ctx) error {
	ctx, cancel := context.WithTimeout(c.UserContext(), readyTimeout)
	defer cancel()
	err := s.ready(ctx)
	if err == nil {
		return c.JSON(fiber.Map{"status": "ok"})
	}
	s.log.Warn("not ready", "err", err, "request_id", RequestID(c))
	detail := "not ready"
	if nr, ok := errors.AsType[*NotReadyError](err); ok {
		detail = "not ready: " + strings.Join(nr.Failed, ", ")
	}
	return problem.New(problem.Unavailable, detail)
}
