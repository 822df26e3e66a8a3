package wallet

import (
	"encoding/json"
	"errors"

	"github.com/creditledger/creditledger/fault"
	"github.com/creditledger/creditledger/internal/text"
)

// maxMetadata bounds a metadata object, in bytes.
const maxMetadata = 16 << 10

func validMetadata(field string, m json.RawMessage) error {
	if len(m) == 0 {
		return nil
	}
	if len(m) > maxMetadata {
		return fault.Invalidf(field, "at most 16 KiB")
	}
	var obj map[string]any
	if err := json.Unmarshal(m, &obj); err != nil {
		return fault.Invalidf(field, "must be a JSON object")
	}
	return textError(text.CheckJSON(field, m, maxMetadata))
}

// checkText refuses text PostgreSQL would not store, or that is too long,
// before it reaches a batch, where it would fail every operation with it.
func checkText(field, s string, maxBytes int) error {
	return textError(text.Check(field, s, maxBytes))
}

// textError is a text.Error as an invalid field.
func textError(err error) error {
	var te *text.Error
	if errors.As(err, &te) {
		return fault.Invalidf(te.Field, "%s", te.Detail)
	}
	return err
}

func nullText(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}
