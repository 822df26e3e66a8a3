package api

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/google/uuid"

	"github.com/creditledger/creditledger/api/problem"
)

// slowRequest is the duration from which a request is logged at INFO.
const slowRequest = time.Second

// HeaderRequestID carries the request id both ways.
const HeaderRequestID = "X-Request-Id"

type requestIDKey struct{}

// RequestID is the request's id, to put in log lines about it.
func RequestID(c *fiber.Ctx) string {
	id, _ := c.Locals(requestIDKey{}).(string)
	return id
}

// requestID keeps a caller's X-Request-Id if it is sane, so one id follows a
// request through the caller's systems and ours, or makes one up.
func (s *server) requestID(c *fiber.Ctx) error {
	id := c.Get(HeaderRequestID)
	if !saneRequestID(id) {
		id = uuid.NewString()
	}
	c.Locals(requestIDKey{}, id)
	c.Set(HeaderRequestID, id)
	return c.Next()
}

// saneRequestID accepts what tracing systems send (UUIDs, hex, base64url)
// and rejects anything that could forge log lines or bloat them.
func saneRequestID(id string) bool {
	if len(id) == 0 || len(id) > 128 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			c == '-' || c == '_' || c == '.' || c == ':') {
			return false
		}
	}
	return true
}

// observe writes the access log line and the request metrics. It turns the
// chain's error into its response first, so both see the final status.
func (s *server) observe(c *fiber.Ctx) error {
	start := time.Now()
	if err := c.Next(); err != nil {
		if herr := s.handleError(c, err); herr != nil {
			s.log.Error("write error response", "err", herr, "request_id", RequestID(c))
			c.Status(fiber.StatusInternalServerError)
		}
	}
	took := time.Since(start)
	status := c.Response().StatusCode()
	route := routeLabel(c)
	s.metrics.ObserveHTTP(c.Method(), route, status, took)

	// One line per request at INFO filled 27 MB in one session: requests
	// are logged at DEBUG, except server errors (WARN) and slow ones
	// (INFO). Metrics count them all.
	level := slog.LevelDebug
	switch {
	case status >= 500:
		level = slog.LevelWarn
	case took >= slowRequest:
		level = slog.LevelInfo
	}
	s.log.LogAttrs(c.UserContext(), level, "http request",
		slog.String("method", c.Method()),
		slog.String("route", route),
		slog.String("path", c.Path()),
		slog.Int("status", status),
		slog.Duration("duration", took),
		slog.String("request_id", RequestID(c)),
	)
	return nil
}

type routeKey struct{}

// matched is the first handler of every route: it records the route's
// pattern for routeLabel. Fiber's c.Route() cannot tell a route from the
// middleware that answered before routing finished (a 401 on /v1 looks like
// route "/v1").
func matched(c *fiber.Ctx) error {
	c.Locals(routeKey{}, c.Route().Path)
	return c.Next()
}

// routeLabel is the pattern of the route that answered ("/v1/wallets/:id"),
// never the raw path, so metrics get one series per route and not one per
// id. A request answered before reaching a route (no route matched, or a
// 401 from the /v1 group) is "unrouted".
func routeLabel(c *fiber.Ctx) string {
	if r, ok := c.Locals(routeKey{}).(string); ok {
		return r
	}
	return "unrouted"
}

// recover turns a handler's panic into a 500 problem. The panic value and
// stack go to the log only.
func (s *server) recover(c *fiber.Ctx) (err error) {
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				panic(v)
			}
			s.log.Error("panic in handler",
				"panic", fmt.Sprint(v),
				"stack", string(debug.Stack()),
				"method", c.Method(),
				"path", c.Path(),
				"request_id", RequestID(c))
			err = problem.New(problem.Internal, internalDetail)
		}
	}()
	return c.Next()
}

const internalDetail = "internal error; the request id identifies it in the server log"

// handleError is the app's ErrorHandler: every error becomes a problem+json
// response. Only *problem.Error and Fiber's own errors say anything to the
// client; anything else is logged and answered with a generic 500.
func (s *server) handleError(c *fiber.Ctx, err error) error {
	id := RequestID(c)
	if id == "" {
		// fasthttp rejected the request (too large, unparseable) before any
		// middleware ran.
		id = uuid.NewString()
		c.Locals(requestIDKey{}, id)
		c.Set(HeaderRequestID, id)
	}
	var p *problem.Error
	var fe *fiber.Error
	if errors.As(err, &fe) && !errors.As(err, &p) {
		p = s.fromFiber(fe)
	}
	if p == nil {
		p = problem.From(err)
	}
	switch {
	case p.Code == problem.Internal:
		s.log.Error("internal error",
			"err", err,
			"method", c.Method(),
			"path", c.Path(),
			"request_id", id)
	case p.Cause != nil && p.HTTPStatus() >= 500:
		// During an outage every request fails the same way: one line per
		// interval, with how many were held back.
		s.logs.Log(s.log, slog.LevelWarn, "request failed: "+string(p.Code),
			"err", p.Cause, "method", c.Method(), "route", routeLabel(c), "request_id", id)
	}
	if p.Code == problem.Unavailable && p.RetryAfter == 0 {
		p.RetryAfter = problem.RetryAfter
	}
	return problem.Write(c, p, id)
}

// fromFiber maps the errors Fiber and fasthttp make themselves (no route,
// body too large, unparseable request) to problems. nil means "internal".
func (s *server) fromFiber(fe *fiber.Error) *problem.Error {
	detail := func(fallback string) string {
		if fe.Message == "" || fe.Message == http.StatusText(fe.Code) || fe.Message == fiber.ErrBadRequest.Message {
			return fallback
		}
		return fe.Message
	}
	switch fe.Code {
	case fiber.StatusNotFound:
		return problem.New(problem.NotFound, "no such route")
	case fiber.StatusMethodNotAllowed:
		return problem.New(problem.MethodNotAllowed, "method not allowed on this route")
	case fiber.StatusRequestEntityTooLarge:
		return problem.Newf(problem.PayloadTooLarge, "request body exceeds %d bytes", s.limit)
	case fiber.StatusUnsupportedMediaType:
		return problem.New(problem.UnsupportedMediaType, detail("unsupported media type"))
	case fiber.StatusUnauthorized:
		return problem.New(problem.Unauthorized, detail("unauthorized"))
	case fiber.StatusForbidden:
		return problem.New(problem.Forbidden, detail("forbidden"))
	case fiber.StatusConflict:
		return problem.New(problem.Conflict, detail("conflict"))
	case fiber.StatusUnprocessableEntity:
		return problem.New(problem.Validation, detail("invalid request"))
	case fiber.StatusTooManyRequests:
		return problem.New(problem.RateLimited, detail("too many requests"))
	case fiber.StatusServiceUnavailable:
		return problem.New(problem.Unavailable, "service unavailable")
	}
	if fe.Code >= 400 && fe.Code < 500 {
		return &problem.Error{Code: problem.BadRequest, Status: fe.Code, Detail: detail("malformed request")}
	}
	return nil
}
