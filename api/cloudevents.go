package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"mime"
	"strconv"

	"github.com/gofiber/fiber/v2"

	"github.com/creditledger/creditledger/api/problem"
	"github.com/creditledger/creditledger/metering"
)

// decodeIngest reads the body of POST /events: {"events":[...]} as
// application/json, or CloudEvents in structured mode — one event as
// application/cloudevents+json, an array as
// application/cloudevents-batch+json. cloud says the events are
// CloudEvents, which metering.ParseCloudEvent reads one by one, so a bad
// one is rejected on its own, as a native event is.
func decodeIngest(c *fiber.Ctx) (events []json.RawMessage, cloud bool, err error) {
	typ, _, _ := mime.ParseMediaType(c.Get(fiber.HeaderContentType))
	body := bytes.TrimSpace(c.Body())
	switch typ {
	case metering.CloudEventType:
		if len(body) == 0 {
			return nil, true, problem.New(problem.BadRequest, "the body must be one CloudEvent")
		}
		// Even broken JSON is the one event's problem: rejected and
		// recorded with its reason, as in a batch.
		return []json.RawMessage{json.RawMessage(body)}, true, nil
	case metering.CloudEventBatchType:
		// Not strictjson: a duplicate key inside one event rejects that
		// event (ParseCloudEvent), not the batch.
		if !json.Valid(body) {
			return nil, true, problem.New(problem.BadRequest, "malformed JSON: the body must be a JSON array of CloudEvents")
		}
		if err := json.Unmarshal(body, &events); err != nil {
			return nil, true, problem.New(problem.BadRequest, "the body must be a JSON array of CloudEvents")
		}
		switch n := len(events); {
		case n == 0:
			return nil, true, problem.New(problem.Validation, "the batch is empty: send 1 to "+strconv.Itoa(metering.MaxBatchEvents)+" CloudEvents")
		case n > metering.MaxBatchEvents:
			return nil, true, problem.New(problem.Validation, fmt.Sprintf("%d CloudEvents; at most %d a request", n, metering.MaxBatchEvents))
		}
		return events, true, nil
	}
	var req ingestRequest
	if err := DecodeJSON(c, &req); err != nil {
		return nil, false, err
	}
	switch n := len(req.Events); {
	case n == 0:
		return nil, false, problem.Invalid("events", "required: 1 to "+strconv.Itoa(metering.MaxBatchEvents)+" events")
	case n > metering.MaxBatchEvents:
		return nil, false, problem.Invalid("events", fmt.Sprintf("%d events; at most %d a request", n, metering.MaxBatchEvents))
	}
	return req.Events, false, nil
}
