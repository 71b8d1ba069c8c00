package session

import (
	"crypto/rand"
	"encoding/base32"
	"encoding/base64"
	"encoding/hex"
	"strconv"

	"github.com/crowdgate/crowdgate/services/serviceerror"
)

// AssignmentIDLen is the length of a Toloka assignment id:
// "%010x--%024x", the Toloka pool id in hex, two dashes, 24 hex digits.
const AssignmentIDLen = 36

// assignmentBinLen is an assignment id's size in bytes (5 + 12).
const assignmentBinLen = 17

// ParseAssignmentID checks that id has the shape of a Toloka assignment id
// (lower-case hex, "00022cfa46--637cf4098ccdeb4a260737de") and returns the
// Toloka pool id it starts with, in decimal as Toloka's API writes pool ids.
// A malformed id is an InvalidArgument naming field.
func ParseAssignmentID(field, id string) (tolokaPoolID string, err error) {
	if _, ok := assignmentBin(id); !ok {
		return "", serviceerror.NewInvalidArgument(field, "not a Toloka assignment id (want 10 hex digits, \"--\", 24 hex digits)")
	}
	n, _ := strconv.ParseUint(id[:10], 16, 64)
	return strconv.FormatUint(n, 10), nil
}

// assignmentBin decodes a well-formed assignment id to 17 bytes.
func assignmentBin(id string) ([assignmentBinLen]byte, bool) {
	var b [assignmentBinLen]byte
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
	return b, true
}

// assignmentFromBin is assignmentBin's inverse.
func assignmentFromBin(b []byte) string {
	return hex.EncodeToString(b[:5]) + "--" + hex.EncodeToString(b[5:assignmentBinLen])
}

// Session ids and codes carry the assignment id they belong to, so that the
// session's record, its codes and its resolve lock are found from either
// alone and share one Redis Cluster hash slot (the assignment id is the
// hash tag of all of them).

var idEncoding = base32.NewEncoding("0123456789abcdefghjkmnpqrstvwxyz").WithPadding(base32.NoPadding)

const (
	sessionIDPrefix = "ses_"
	sessionIDRand   = 8
	// sessionIDLen is len("ses_") + base32 of 17+8 bytes.
	sessionIDLen = len(sessionIDPrefix) + (assignmentBinLen+sessionIDRand)*8/5
	codeSecret   = 18
	// codeLen is base64url of 17+18 bytes.
	codeLen = ((assignmentBinLen+codeSecret)*8 + 5) / 6
)

// newSessionID returns a session id for the assignment: its bytes and 8
// random ones.
func newSessionID(aid [assignmentBinLen]byte) string {
	var b [assignmentBinLen + sessionIDRand]byte
	copy(b[:], aid[:])
	_, _ = rand.Read(b[assignmentBinLen:])
	return sessionIDPrefix + idEncoding.EncodeToString(b[:])
}

// assignmentOfSession returns the assignment id a session id was made for.
func assignmentOfSession(sid string) (string, bool) {
	if len(sid) != sessionIDLen || sid[:len(sessionIDPrefix)] != sessionIDPrefix {
		return "", false
	}
	b, err := idEncoding.DecodeString(sid[len(sessionIDPrefix):])
	if err != nil || len(b) != assignmentBinLen+sessionIDRand {
		return "", false
	}
	return assignmentFromBin(b), true
}

// newCode returns a one-time code for the assignment's session and the
// secret part that names its Redis key.
func newCode(aid [assignmentBinLen]byte) (code, secret string) {
	var b [assignmentBinLen + codeSecret]byte
	copy(b[:], aid[:])
	_, _ = rand.Read(b[assignmentBinLen:])
	return base64.RawURLEncoding.EncodeToString(b[:]), base64.RawURLEncoding.EncodeToString(b[assignmentBinLen:])
}

// parseCode splits a code into its assignment id and secret.
func parseCode(code string) (aid, secret string, ok bool) {
	if len(code) != codeLen {
		return "", "", false
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(code)
	if err != nil || len(b) != assignmentBinLen+codeSecret {
		return "", "", false
	}
	return assignmentFromBin(b), base64.RawURLEncoding.EncodeToString(b[assignmentBinLen:]), true
}
