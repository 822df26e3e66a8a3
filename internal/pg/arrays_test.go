package pg

import (
	"bytes"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgtype"
)

// The fast array codecs write the bytes pgx's own array codec writes, for
// every slice type they take, NULL elements and NULL arrays included.
func TestArraysEncodeAsPgxDoes(t *testing.T) {
	fast := pgtype.NewMap()
	registerUUID(fast)
	registerArrays(fast)
	ref := pgtype.NewMap()
	registerUUID(ref)

	u1, u2 := uuid.New(), uuid.New()
	s1, s2 := "a", "ünïcode {\"json\": 1}"
	for _, tc := range []struct {
		name  string
		oid   uint32
		value any
	}{
		{"uuids", pgtype.UUIDArrayOID, []uuid.UUID{u1, u2}},
		{"uuid bytes", pgtype.UUIDArrayOID, [][16]byte{u1, u2}},
		{"nullable uuids", pgtype.UUIDArrayOID, []*uuid.UUID{&u1, nil, &u2}},
		{"nil uuids", pgtype.UUIDArrayOID, []uuid.UUID(nil)},
		{"texts", pgtype.TextArrayOID, []string{s1, "", s2}},
		{"nullable texts", pgtype.TextArrayOID, []*string{&s1, nil, &s2}},
		{"texts as bytes", pgtype.TextArrayOID, [][]byte{[]byte(s1), nil, []byte{}, []byte(s2)}},
		{"nil texts", pgtype.TextArrayOID, []string(nil)},
		{"byteas", pgtype.ByteaArrayOID, [][]byte{{0, 1, 2}, nil, {}}},
		{"int4s", pgtype.Int4ArrayOID, []int32{0, -1, 1 << 30, -1 << 31}},
		{"bools", pgtype.BoolArrayOID, []bool{true, false, true}},
		{"nil int4s", pgtype.Int4ArrayOID, []int32(nil)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			switch p := fast.PlanEncode(tc.oid, pgtype.BinaryFormatCode, tc.value).(type) {
			case uuidArrayPlan, bytesArrayPlan, fixedArrayPlan:
			default:
				t.Fatalf("plan %T, not the fast one", p)
			}
			got, err := fast.Encode(tc.oid, pgtype.BinaryFormatCode, tc.value, nil)
			if err != nil {
				t.Fatal(err)
			}
			want, err := ref.Encode(tc.oid, pgtype.BinaryFormatCode, tc.value, nil)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) || (got == nil) != (want == nil) {
				t.Fatalf("encoded\n%x\nwant\n%x", got, want)
			}
		})
	}
}

// An empty array is '{}' (zero dimensions), which pgx reads back as empty.
func TestEmptyArrayDecodes(t *testing.T) {
	m := pgtype.NewMap()
	registerUUID(m)
	registerArrays(m)
	for _, v := range []any{[]uuid.UUID{}, []string{}, [][]byte{}} {
		buf, err := m.Encode(pgtype.TextArrayOID, pgtype.BinaryFormatCode, v, nil)
		if _, isUUIDs := v.([]uuid.UUID); isUUIDs {
			buf, err = m.Encode(pgtype.UUIDArrayOID, pgtype.BinaryFormatCode, v, nil)
		}
		if err != nil || buf == nil {
			t.Fatalf("%T: %x %v", v, buf, err)
		}
		var out []string
		oid := uint32(pgtype.TextArrayOID)
		if _, isUUIDs := v.([]uuid.UUID); isUUIDs {
			oid = pgtype.UUIDArrayOID
		}
		if err := m.Scan(oid, pgtype.BinaryFormatCode, buf, &out); err != nil || out == nil || len(out) != 0 {
			t.Fatalf("%T: decoded %#v, %v", v, out, err)
		}
	}
}

// The point of the codecs: a thousand ids cost no allocation per element.
func TestArraysEncodeWithoutPerElementAllocations(t *testing.T) {
	m := pgtype.NewMap()
	registerUUID(m)
	registerArrays(m)
	ids := make([]uuid.UUID, 1000)
	ptrs := make([]*uuid.UUID, 1000)
	texts := make([]*string, 1000)
	for i := range ids {
		ids[i] = uuid.New()
		if i%2 == 0 {
			ptrs[i] = &ids[i]
			s := ids[i].String()
			texts[i] = &s
		}
	}
	buf := make([]byte, 0, 64<<10)
	for _, tc := range []struct {
		oid   uint32
		value any
	}{{pgtype.UUIDArrayOID, ids}, {pgtype.UUIDArrayOID, ptrs}, {pgtype.TextArrayOID, texts}} {
		allocs := testing.AllocsPerRun(20, func() {
			if _, err := m.Encode(tc.oid, pgtype.BinaryFormatCode, tc.value, buf[:0]); err != nil {
				t.Fatal(err)
			}
		})
		if allocs > 2 {
			t.Errorf("%T: %.0f allocations to encode 1,000 elements", tc.value, allocs)
		}
	}
}
