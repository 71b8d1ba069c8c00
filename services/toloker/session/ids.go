package session

import (
	"crypto/rand"
	"encoding/base32"

	"github.com/crowdgate/crowdgate/services/platform/toloka"
)

// Session ids and codes carry the assignment id they belong to, so that the
// session's record, its codes and its resolve lock are found from either
// alone and share one Redis Cluster hash slot (the assignment id is the
// hash tag of all of them).

// assignmentBinLen is an assignment id's size in bytes.
const assignmentBinLen = toloka.AssignmentIDSize

var idEncoding = base32.NewEncoding("0123456789abcdefghjkmnpqrstvwxyz").WithPadding(base32.NoPadding)

const (
	sessionIDPrefix = "ses_"
	sessionIDRand   = 8
	// sessionIDLen is len("ses_") + base32 of 17+8 bytes.
	sessionIDLen = len(sessionIDPrefix) + (assignmentBinLen+sessionIDRand)*8/5
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
	return toloka.AssignmentIDFromBytes(b), true
}
