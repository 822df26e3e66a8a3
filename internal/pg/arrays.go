package pg

import (
	"encoding/binary"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgtype"
)

// registerArrays makes pgx write the array parameters of multi-row
// statements (unnest($1::UUID[], $2::TEXT[], …)) in one pass over the
// slice. Left to pgx, a []uuid.UUID, []*uuid.UUID, []*string or [][]byte
// (UUID[], TEXT[], BYTEA[]) is walked by reflection (the Value and the boxed interface of every
// element, then an encode plan looked up per element): 17% of ledgerd's
// CPU in the ingest profile, for arrays of thousands of ids. Even the
// slices pgx knows ([]string, []int32, []bool) box each element in an
// interface and look at it through reflect. The
// codecs below take the slices the services pass and write PostgreSQL's
// binary array format directly; any other value goes to pgx's own array
// codec, as before.
func registerArrays(m *pgtype.Map) {
	for _, oid := range []uint32{pgtype.UUIDArrayOID, pgtype.TextArrayOID, pgtype.ByteaArrayOID, pgtype.Int4ArrayOID, pgtype.BoolArrayOID} {
		t, ok := m.TypeForOID(oid)
		if !ok {
			continue
		}
		m.RegisterType(&pgtype.Type{Name: t.Name, OID: t.OID, Codec: &sliceArrayCodec{Codec: t.Codec, oid: oid}})
	}
}

// sliceArrayCodec is an array type's codec with a fast path for the
// slices of its element type (see registerArrays); everything else —
// scanning, text format, other Go types — is the wrapped codec's.
type sliceArrayCodec struct {
	pgtype.Codec
	oid uint32 // the array type's
}

func (c *sliceArrayCodec) PlanEncode(m *pgtype.Map, oid uint32, format int16, value any) pgtype.EncodePlan {
	if format == pgtype.BinaryFormatCode {
		switch c.oid {
		case pgtype.UUIDArrayOID:
			switch value.(type) {
			case []uuid.UUID, []*uuid.UUID, [][16]byte:
				return uuidArrayPlan{}
			}
		case pgtype.TextArrayOID:
			switch value.(type) {
			case []string, []*string, [][]byte:
				return bytesArrayPlan{elem: pgtype.TextOID}
			}
		case pgtype.ByteaArrayOID:
			if _, ok := value.([][]byte); ok {
				return bytesArrayPlan{elem: pgtype.ByteaOID}
			}
		case pgtype.Int4ArrayOID:
			if _, ok := value.([]int32); ok {
				return fixedArrayPlan{}
			}
		case pgtype.BoolArrayOID:
			if _, ok := value.([]bool); ok {
				return fixedArrayPlan{}
			}
		}
	}
	return c.Codec.PlanEncode(m, oid, format, value)
}

// appendArrayHeader writes the header of a one-dimensional array of n
// elements (none: zero dimensions, PostgreSQL's '{}'). hasNull is patched
// afterwards by markNull.
func appendArrayHeader(buf []byte, n int, elem uint32) []byte {
	if n == 0 {
		buf = binary.BigEndian.AppendUint32(buf, 0) // dimensions
		buf = binary.BigEndian.AppendUint32(buf, 0) // has nulls
		return binary.BigEndian.AppendUint32(buf, elem)
	}
	buf = binary.BigEndian.AppendUint32(buf, 1)
	buf = binary.BigEndian.AppendUint32(buf, 0)
	buf = binary.BigEndian.AppendUint32(buf, elem)
	buf = binary.BigEndian.AppendUint32(buf, uint32(n))
	return binary.BigEndian.AppendUint32(buf, 1) // lower bound
}

// markNull sets the has-nulls flag of the header starting at start.
func markNull(buf []byte, start int) {
	binary.BigEndian.PutUint32(buf[start+4:], 1)
}

func appendNull(buf []byte) []byte { return binary.BigEndian.AppendUint32(buf, 0xFFFFFFFF) }

// uuidArrayPlan writes a UUID[]: 16 bytes an element, a nil pointer as
// NULL. A nil slice is a NULL array, as pgx makes it.
type uuidArrayPlan struct{}

func (uuidArrayPlan) Encode(value any, buf []byte) ([]byte, error) {
	start := len(buf)
	switch v := value.(type) {
	case []uuid.UUID:
		if v == nil {
			return nil, nil
		}
		buf = appendArrayHeader(buf, len(v), pgtype.UUIDOID)
		for i := range v {
			buf = binary.BigEndian.AppendUint32(buf, 16)
			buf = append(buf, v[i][:]...)
		}
	case [][16]byte:
		if v == nil {
			return nil, nil
		}
		buf = appendArrayHeader(buf, len(v), pgtype.UUIDOID)
		for i := range v {
			buf = binary.BigEndian.AppendUint32(buf, 16)
			buf = append(buf, v[i][:]...)
		}
	case []*uuid.UUID:
		if v == nil {
			return nil, nil
		}
		buf = appendArrayHeader(buf, len(v), pgtype.UUIDOID)
		for _, u := range v {
			if u == nil {
				buf = appendNull(buf)
				markNull(buf, start)
				continue
			}
			buf = binary.BigEndian.AppendUint32(buf, 16)
			buf = append(buf, u[:]...)
		}
	}
	return buf, nil
}

// bytesArrayPlan writes a TEXT[] or BYTEA[] whose elements are strings or
// byte slices, as they are (the binary form of text is its bytes); a nil
// *string or []byte is NULL. Text is valid UTF-8 without NUL: the services
// check it at the edge (internal/text), and the server checks it again.
type bytesArrayPlan struct{ elem uint32 }

func (p bytesArrayPlan) Encode(value any, buf []byte) ([]byte, error) {
	start := len(buf)
	switch v := value.(type) {
	case []string:
		if v == nil {
			return nil, nil
		}
		buf = appendArrayHeader(buf, len(v), p.elem)
		for _, s := range v {
			buf = binary.BigEndian.AppendUint32(buf, uint32(len(s)))
			buf = append(buf, s...)
		}
	case []*string:
		if v == nil {
			return nil, nil
		}
		buf = appendArrayHeader(buf, len(v), p.elem)
		for _, s := range v {
			if s == nil {
				buf = appendNull(buf)
				markNull(buf, start)
				continue
			}
			buf = binary.BigEndian.AppendUint32(buf, uint32(len(*s)))
			buf = append(buf, *s...)
		}
	case [][]byte:
		if v == nil {
			return nil, nil
		}
		buf = appendArrayHeader(buf, len(v), p.elem)
		for _, b := range v {
			if b == nil {
				buf = appendNull(buf)
				markNull(buf, start)
				continue
			}
			buf = binary.BigEndian.AppendUint32(buf, uint32(len(b)))
			buf = append(buf, b...)
		}
	}
	return buf, nil
}

// fixedArrayPlan writes an INT4[] from []int32 or a BOOL[] from []bool.
type fixedArrayPlan struct{}

func (fixedArrayPlan) Encode(value any, buf []byte) ([]byte, error) {
	switch v := value.(type) {
	case []int32:
		if v == nil {
			return nil, nil
		}
		buf = appendArrayHeader(buf, len(v), pgtype.Int4OID)
		for _, x := range v {
			buf = binary.BigEndian.AppendUint32(buf, 4)
			buf = binary.BigEndian.AppendUint32(buf, uint32(x))
		}
	case []bool:
		if v == nil {
			return nil, nil
		}
		buf = appendArrayHeader(buf, len(v), pgtype.BoolOID)
		for _, x := range v {
			buf = binary.BigEndian.AppendUint32(buf, 1)
			if x {
				buf = append(buf, 1)
			} else {
				buf = append(buf, 0)
			}
		}
	}
	return buf, nil
}
