package toloka

import (
	"encoding/hex"
	"strconv"
)

// Toloka's assignment ids are "%010x--%024x": the id of the pool the
// assignment is in, in lower-case hex, two dashes, and 24 more hex digits
// ("00022cfa46--637cf4098ccdeb4a260737de" is in pool 36502086). This file
// is the one place that reads that convention; everything else asks it.
const (
	// AssignmentIDLen is the length of an assignment id.
	AssignmentIDLen = 36
	// AssignmentIDSize is the size of an assignment id's binary form
	// (AssignmentIDBytes): 5 bytes of pool id and 12 more.
	AssignmentIDSize = 17
)

// AssignmentIDExample is an assignment id to show in error messages.
const AssignmentIDExample = "00022cfa46--637cf4098ccdeb4a260737de"

// ParseAssignmentID reports whether id is shaped like a Toloka assignment
// id and returns the id of the pool it is in, in decimal as the API writes
// pool ids. Upper-case hex, other lengths and pool 0 are not assignment ids.
func ParseAssignmentID(id string) (poolID string, ok bool) {
	b, ok := AssignmentIDBytes(id)
	if !ok {
		return "", false
	}
	var n uint64
	for _, c := range b[:5] {
		n = n<<8 | uint64(c)
	}
	if n == 0 {
		return "", false
	}
	return strconv.FormatUint(n, 10), true
}

// AssignmentIDBytes returns the binary form of a well-formed assignment id
// (for compact encodings that carry one); ok is false for anything else.
func AssignmentIDBytes(id string) (b [AssignmentIDSize]byte, ok bool) {
	if len(id) != AssignmentIDLen || id[10] != '-' || id[11] != '-' {
		return b, false
	}
	for i := 0; i < len(id); i++ {
		if i == 10 || i == 11 {
			continue
		}
		if c := id[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return b, false
		}
	}
	if _, err := hex.Decode(b[:5], []byte(id[:10])); err != nil {
		return b, false
	}
	if _, err := hex.Decode(b[5:], []byte(id[12:])); err != nil {
		return b, false
	}
	if b == ([AssignmentIDSize]byte{}) || b[0]|b[1]|b[2]|b[3]|b[4] == 0 {
		return b, false
	}
	return b, true
}

// AssignmentIDFromBytes is AssignmentIDBytes' inverse; b must hold at least
// AssignmentIDSize bytes.
func AssignmentIDFromBytes(b []byte) string {
	return hex.EncodeToString(b[:5]) + "--" + hex.EncodeToString(b[5:AssignmentIDSize])
}
