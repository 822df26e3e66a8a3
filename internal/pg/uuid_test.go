package pg

import (
	"bytes"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgtype"
)

// Ids, plain or as nullable pointers, alone or in arrays, are encoded as
// their 16 bytes without a detour through text.
func TestUUIDEncodesAsBytes(t *testing.T) {
	m := pgtype.NewMap()
	registerUUID(m)
	u := uuid.MustParse("0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b")
	for _, tc := range []struct {
		name  string
		value any
		want  []byte // nil: SQL NULL
	}{
		{"value", u, u[:]},
		{"pointer", &u, u[:]},
		{"nil pointer", (*uuid.UUID)(nil), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			plan := m.PlanEncode(pgtype.UUIDOID, pgtype.BinaryFormatCode, tc.value)
			if plan == nil {
				t.Fatal("no plan")
			}
			got, err := m.Encode(pgtype.UUIDOID, pgtype.BinaryFormatCode, tc.value, nil)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, tc.want) || (got == nil) != (tc.want == nil) {
				t.Fatalf("encoded %x, want %x", got, tc.want)
			}
		})
	}
	// In an array, where the poster sends them, with a NULL among them.
	arr, err := m.Encode(pgtype.UUIDArrayOID, pgtype.BinaryFormatCode, []*uuid.UUID{&u, nil, &u}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if n := bytes.Count(arr, u[:]); n != 2 {
		t.Fatalf("array holds the id %d times, want 2: %x", n, arr)
	}
	// Without the pointer plan pgx goes through driver.Valuer: a string, a
	// failed binary encode (an error), a parse: 19 allocations per id.
	ids := make([]*uuid.UUID, 1000)
	for i := range ids {
		ids[i] = &u
	}
	buf := make([]byte, 0, 64<<10)
	allocs := testing.AllocsPerRun(10, func() {
		if _, err := m.Encode(pgtype.UUIDArrayOID, pgtype.BinaryFormatCode, ids, buf[:0]); err != nil {
			t.Fatal(err)
		}
	})
	t.Logf("%.0f allocations for 1,000 ids", allocs)
	if allocs > 3000 {
		t.Fatalf("%.0f allocations encoding 1,000 ids, want at most 3 each (19 each through driver.Valuer)", allocs)
	}
}
