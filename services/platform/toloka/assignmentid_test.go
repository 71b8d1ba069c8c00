package toloka

import "testing"

func TestParseAssignmentID(t *testing.T) {
	for _, tc := range []struct {
		id, pool string
	}{
		{"00022cfa46--637cf4098ccdeb4a260737de", "36502086"},
		{"0000000001--000000000000000000000001", "1"},
		{"ffffffffff--ffffffffffffffffffffffff", "1099511627775"},
		// Not assignment ids: each is refused everywhere (landing, sessions,
		// review, submissions) because this is the only parser.
		{"00022CFA46--637cf4098ccdeb4a260737de", ""},
		{"00022cfa46-637cf4098ccdeb4a260737de", ""},
		{"00022cfa46--637cf4098ccdeb4a260737d", ""},
		{"00022cfa46__637cf4098ccdeb4a260737de", ""},
		{"00022cfa4g--637cf4098ccdeb4a260737de", ""},
		{"00022cfa46--637cf4098ccdeb4a260737dz", ""},
		{"0000000000--637cf4098ccdeb4a260737de", ""},
		{"00000000ff--0", ""},
		{"11111111111111111--1", ""},
		{"--637cf4098ccdeb4a260737de", ""},
		{"00022cfa46--", ""},
		{"42", ""},
		{"", ""},
	} {
		pool, ok := ParseAssignmentID(tc.id)
		if pool != tc.pool || ok != (tc.pool != "") {
			t.Errorf("ParseAssignmentID(%q) = %q, %v; want %q", tc.id, pool, ok, tc.pool)
		}
		if b, ok := AssignmentIDBytes(tc.id); ok && AssignmentIDFromBytes(b[:]) != tc.id {
			t.Errorf("AssignmentIDFromBytes(AssignmentIDBytes(%q)) = %q", tc.id, AssignmentIDFromBytes(b[:]))
		}
	}
}
