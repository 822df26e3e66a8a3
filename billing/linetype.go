package billing

import "encoding/json"

// Line types, as "type" (and the deprecated "kind") of an invoice line:
// base_fee, usage, debits, topup, commitment_true_up, adjustment.

// MarshalJSON sends a line's kind as "type" too. Derived here rather than
// stored, so lines stored before "type" existed, and lines any issuer
// builds, carry it without each setting two fields.
func (l InvoiceLine) MarshalJSON() ([]byte, error) {
	type plain InvoiceLine // without this method
	return json.Marshal(struct {
		Type string `json:"type"`
		plain
	}{l.Kind, plain(l)})
}
