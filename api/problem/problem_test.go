package problem

import (
	"encoding/json"
	"errors"
	"io"
	"net/http/httptest"
	"testing"

	"github.com/gofiber/fiber/v2"
)

func TestCodes(t *testing.T) {
	for code, want := range map[Code]int{
		Validation: 422, BadRequest: 400, Unauthorized: 401, Forbidden: 403, NotFound: 404,
		MethodNotAllowed: 405, Conflict: 409, IdempotencyConflict: 409, InsufficientCredits: 402,
		PayloadTooLarge: 413, UnsupportedMediaType: 415, RateLimited: 429, Internal: 500, Unavailable: 503, "no_such_code": 500,
	} {
		if got := code.Status(); got != want {
			t.Errorf("%s.Status() = %d, want %d", code, got, want)
		}
		if code.Title() == "" || code.Type() != TypeBase+string(code) {
			t.Errorf("%s: title %q, type %q", code, code.Title(), code.Type())
		}
	}
}

func TestFields(t *testing.T) {
	var none Fields
	if err := none.Err(); err != nil {
		t.Fatalf("no fields: %v", err)
	}
	var bad Fields
	bad.Add("amount", "must be a decimal string")
	bad.Add("asset", "is required")
	var p *Error
	if !errors.As(bad.Err(), &p) || p.Code != Validation || len(p.Fields) != 2 || p.HTTPStatus() != 422 {
		t.Fatalf("Err() = %#v", bad.Err())
	}
}

func TestWrite(t *testing.T) {
	app := fiber.New()
	app.Get("/", func(c *fiber.Ctx) error {
		return Write(c, &Error{Code: Validation, Status: 400, Detail: "send <json>", Fields: []FieldError{{"a", "b"}}}, "req-1")
	})
	resp, err := app.Test(httptest.NewRequest("GET", "/", nil))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 400 || resp.Header.Get("Content-Type") != ContentType {
		t.Fatalf("%d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	var got map[string]any
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"type": TypeBase + "validation_error", "title": "Validation failed", "status": 400.0,
		"detail": "send <json>", "code": "validation_error", "request_id": "req-1",
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v (%s)", k, got[k], v, body)
		}
	}
	if errs, _ := got["errors"].([]any); len(errs) != 1 {
		t.Errorf("errors = %v", got["errors"])
	}
}
