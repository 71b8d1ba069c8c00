package session

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"hash"
	"math"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"google.golang.org/protobuf/types/known/timestamppb"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
	"github.com/crowdgate/crowdgate/services/kernel/serviceerror"
	"github.com/crowdgate/crowdgate/services/platform/token"
	"github.com/crowdgate/crowdgate/services/platform/toloka"
)

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
		aid:    toloka.AssignmentIDFromBytes(b[:assignmentBinLen]),
		expiry: time.UnixMilli(int64(min(ms, math.MaxInt64))),
		nonce:  b.nonce(),
	}, true, true
}

// Exchange trades a one-time code for a token. The code is consumed
// whatever the outcome, unless the caller is another tenant's. Errors:
// InvalidArgument (malformed code), NotFound (unknown, used or expired
// code, or another tenant's), FailedPrecondition (the session has ended).
func (s *Service) Exchange(ctx context.Context, tenantID, code string) (*crowdgatev1.ExchangeCodeResponse, error) {
	if code == "" {
		return nil, serviceerror.NewInvalidArgument("code", "required")
	}
	c, shaped, authentic := s.codes.parseCode(code)
	if !shaped {
		return nil, serviceerror.NewInvalidArgument("code", "not a code from Crowdgate's redirect")
	}
	notFound := &serviceerror.NotFound{Resource: "code", ID: ""}
	// A code lives CodeTTL by the clock of the replica that minted it. One
	// that claims to live longer than CodeTTL plus the clock skew allowed
	// between replicas was not minted by a sane clock; refuse it, so that
	// the used-marker, which outlives the code by that skew, is always
	// there while another replica could still accept the code.
	left := c.expiry.Sub(s.now())
	if !authentic || left <= 0 || left > s.settings.CodeTTL+MaxClockSkew {
		s.metrics.exchanged("unknown")
		return nil, notFound
	}
	// Another tenant's call is refused before the code is used: one
	// tenant's call never decides another's outcome. (The session read
	// is checked again below, as the exchange returns it.)
	ours, err := s.store.sessionOfTenant(ctx, c.aid, tenantID)
	if err != nil {
		return nil, err
	}
	if !ours {
		s.metrics.exchanged("unknown")
		return nil, notFound
	}
	raw, err := s.store.exchange(ctx, c.aid, c.nonce, left+MaxClockSkew)
	if err == errCodeUsed || (err == nil && raw == "") {
		s.metrics.exchanged("unknown")
		return nil, notFound
	}
	if err != nil {
		return nil, err
	}
	r, err := unmarshalRecord([]byte(raw))
	if err != nil {
		return nil, err
	}
	if r.session.GetTenantId() != tenantID {
		s.metrics.exchanged("unknown")
		return nil, notFound
	}
	s.view(r)
	if !r.active() {
		s.metrics.exchanged("ended")
		return nil, &EndedError{Session: r.session}
	}
	sess := r.session
	claims := token.Claims{
		TenantID:     sess.TenantId,
		ProjectID:    sess.ProjectId,
		PoolID:       sess.PoolId,
		TolokaPoolID: r.tolokaPoolID,
		AssignmentID: sess.AssignmentId,
		SessionID:    sess.SessionId,
	}
	claims.Subject = sess.UserId
	// The platform's audience lets a platform check its origin; Sign adds
	// the tenant's, which pins the token to its tenant.
	claims.Audience = []string{r.audience}
	claims.ExpiresAt = jwt.NewNumericDate(sess.GetExpireTime().AsTime())
	signed, exp, err := s.signer.Sign(ctx, claims)
	if err != nil {
		return nil, err
	}
	s.metrics.exchanged("ok")
	return &crowdgatev1.ExchangeCodeResponse{Token: signed, ExpireTime: timestamppb.New(exp), Session: sess}, nil
}
