package session

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"hash"
	"math"
	"strconv"
	"sync"
	"time"

	"github.com/crowdgate/crowdgate/services/kernel/serviceerror"
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

// One-time codes are self-contained, so that a landing writes nothing to
// Redis: a code is the assignment (17 bytes), its expiry (8, Unix
// milliseconds, big-endian), a random nonce (12) and an HMAC-SHA256 of those
// 37 bytes, cut to 16, under a key every replica shares; base64url, 71
// characters. A code works once: the exchange marks its nonce used in Redis
// (SET NX, until MaxClockSkew after the code has expired).
const (
	codeExpiryLen = 8
	codeNonceLen  = 12
	codeMACLen    = 16
	codeBodyLen   = assignmentBinLen + codeExpiryLen + codeNonceLen
	codeBinLen    = codeBodyLen + codeMACLen
	// codeLen is base64url (no padding) of codeBinLen bytes.
	codeLen = (codeBinLen*8 + 5) / 6
	// CodeKeySize is the size of Config.CodeKey.
	CodeKeySize = 32
)

// codeMinter mints and checks codes with one key.
type codeMinter struct {
	macs sync.Pool // of hash.Hash: HMAC-SHA256 under the key
}

func newCodeMinter(key []byte) *codeMinter {
	key = append([]byte(nil), key...)
	return &codeMinter{macs: sync.Pool{New: func() any { return hmac.New(sha256.New, key) }}}
}

// mac writes body's MAC into out.
func (m *codeMinter) mac(out, body []byte) {
	h := m.macs.Get().(hash.Hash)
	h.Reset()
	h.Write(body)
	var sum [sha256.Size]byte
	copy(out, h.Sum(sum[:0]))
	m.macs.Put(h)
}

// code is a parsed code.
type code struct {
	aid    string
	expiry time.Time
	nonce  string // base64url, names the code's used-marker
}

// rawCode is a minted code before its base64url encoding.
type rawCode [codeBinLen]byte

// mint returns a code for the assignment's session that expires at expiry.
func (m *codeMinter) mint(aid [assignmentBinLen]byte, expiry time.Time) *rawCode {
	var c rawCode
	copy(c[:], aid[:])
	binary.BigEndian.PutUint64(c[assignmentBinLen:], uint64(expiry.UnixMilli()))
	_, _ = rand.Read(c[assignmentBinLen+codeExpiryLen : codeBodyLen])
	m.mac(c[codeBodyLen:], c[:codeBodyLen])
	return &c
}

// String is the code as it travels (base64url, codeLen characters).
func (c *rawCode) String() string { return base64.RawURLEncoding.EncodeToString(c[:]) }

// nonce is the code's nonce (base64url): random and unique to the code.
func (c *rawCode) nonce() string {
	return base64.RawURLEncoding.EncodeToString(c[assignmentBinLen+codeExpiryLen : codeBodyLen])
}

// newLockToken returns a random token that names one landing's hold on a
// resolve lock.
func newLockToken() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// parseCode reads a code. shaped is false for a string that is not shaped
// like a code; authentic is false for a code this key did not mint (forged,
// altered, or minted under another key).
func (m *codeMinter) parseCode(s string) (c code, shaped, authentic bool) {
	if len(s) != codeLen {
		return code{}, false, false
	}
	var b rawCode
	n, err := base64.RawURLEncoding.Strict().Decode(b[:], []byte(s))
	if err != nil || n != codeBinLen {
		return code{}, false, false
	}
	var want [codeMACLen]byte
	m.mac(want[:], b[:codeBodyLen])
	if !hmac.Equal(want[:], b[codeBodyLen:]) {
		return code{}, true, false
	}
	ms := binary.BigEndian.Uint64(b[assignmentBinLen:])
	return code{
		aid:    assignmentFromBin(b[:assignmentBinLen]),
		expiry: time.UnixMilli(int64(min(ms, math.MaxInt64))),
		nonce:  b.nonce(),
	}, true, true
}
