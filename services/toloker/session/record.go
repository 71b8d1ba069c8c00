package session

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/url"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
	"github.com/crowdgate/crowdgate/services/platform/restriction"
)

// A session's Redis record is small and binary:
//
//	state byte ('A' active, 'E' ended)
//	uvarint length + redirect base (the platform URL up to where the code goes)
//	uvarint length + redirect suffix (the platform URL's #fragment, if any)
//	the crowdgatev1.Session in protobuf wire format, followed by the fields
//	the API does not show (audience, Toloka pool id, and the revisions of
//	the last changes, see store.update) as extra fields
//
// The first byte lets the landing's Lua script mint a code for an active
// session only; the redirect parts let a warm landing build its redirect
// without decoding the protobuf.

const (
	stateActive = 'A'
	stateEnded  = 'E'
)

// Extra field numbers, far above Session's own.
const (
	fieldAudience     protowire.Number = 1001
	fieldTolokaPoolID protowire.Number = 1002
	fieldRevision     protowire.Number = 1003
)

// record is a session and what Crowdgate keeps beside it.
type record struct {
	session *crowdgatev1.Session
	// redirectBase and redirectSuffix surround "code=<code>" in the redirect.
	redirectBase, redirectSuffix string
	// audience is the token's aud: the project's platform audience.
	audience string
	// tolokaPoolID is Toloka's id of the session's pool.
	tolokaPoolID string
	// credentialID is the credential of the pool's project, known when
	// the record is made (it is not stored: the pool's route has it).
	credentialID string
	// revisions name the record's last changes (store.update), oldest
	// first, at most keptRevisions: each change adds a random one. A swap
	// sent again after a lost reply looks for its own revision in the
	// record (swap.lua), so it counts once even when other changes came
	// after it. Empty until the first change. Replicas that do not know
	// them drop them when they change the record.
	revisions []string
	// stored is the record as it was read from Redis ("" for one made
	// here), what a change swaps out (store.update).
	stored string
}

// target is where the session is, for bans.
func (r *record) target() restriction.Target {
	return restriction.Target{CredentialID: r.credentialID, ProjectID: r.session.GetProjectId(), PoolID: r.session.GetPoolId()}
}

func (r *record) active() bool {
	return r.session.GetState() == crowdgatev1.SessionState_SESSION_STATE_ACTIVE
}

func (r *record) marshal() ([]byte, error) {
	pb, err := proto.Marshal(r.session)
	if err != nil {
		return nil, fmt.Errorf("session: encode: %w", err)
	}
	b := make([]byte, 0, 1+2*binary.MaxVarintLen32+len(r.redirectBase)+len(r.redirectSuffix)+len(pb)+len(r.audience)+len(r.tolokaPoolID)+len(r.revisions)*(revisionSize+3)+8)
	state := byte(stateEnded)
	if r.active() {
		state = stateActive
	}
	b = append(b, state)
	b = binary.AppendUvarint(b, uint64(len(r.redirectBase)))
	b = append(b, r.redirectBase...)
	b = binary.AppendUvarint(b, uint64(len(r.redirectSuffix)))
	b = append(b, r.redirectSuffix...)
	b = append(b, pb...)
	b = protowire.AppendTag(b, fieldAudience, protowire.BytesType)
	b = protowire.AppendString(b, r.audience)
	b = protowire.AppendTag(b, fieldTolokaPoolID, protowire.BytesType)
	b = protowire.AppendString(b, r.tolokaPoolID)
	for _, rev := range r.revisions {
		b = protowire.AppendTag(b, fieldRevision, protowire.BytesType)
		b = protowire.AppendString(b, rev)
	}
	return b, nil
}

var errCorrupt = errors.New("session: corrupt record")

// redirectParts reads a record's header only: whether it is active and its
// redirect parts, and where the protobuf starts.
func redirectParts(b []byte) (active bool, base, suffix string, rest []byte, err error) {
	active, bb, sb, rest, err := redirectSlices(b)
	return active, string(bb), string(sb), rest, err
}

// redirectSlices is redirectParts without copies: base and suffix are
// slices of b.
func redirectSlices(b []byte) (active bool, base, suffix, rest []byte, err error) {
	if len(b) < 3 || (b[0] != stateActive && b[0] != stateEnded) {
		return false, nil, nil, nil, errCorrupt
	}
	active = b[0] == stateActive
	p := b[1:]
	n, k := binary.Uvarint(p)
	if k <= 0 || uint64(len(p)-k) < n {
		return false, nil, nil, nil, errCorrupt
	}
	base, p = p[k:k+int(n)], p[k+int(n):]
	n, k = binary.Uvarint(p)
	if k <= 0 || uint64(len(p)-k) < n {
		return false, nil, nil, nil, errCorrupt
	}
	suffix, p = p[k:k+int(n)], p[k+int(n):]
	return active, base, suffix, p, nil
}

func unmarshalRecord(b []byte) (*record, error) {
	_, base, suffix, pb, err := redirectParts(b)
	if err != nil {
		return nil, err
	}
	r := &record{session: new(crowdgatev1.Session), redirectBase: base, redirectSuffix: suffix}
	if err := proto.Unmarshal(pb, r.session); err != nil {
		return nil, fmt.Errorf("%w: %w", errCorrupt, err)
	}
	unknown := r.session.ProtoReflect().GetUnknown()
	for len(unknown) > 0 {
		num, typ, n := protowire.ConsumeTag(unknown)
		if n < 0 {
			return nil, errCorrupt
		}
		unknown = unknown[n:]
		if typ != protowire.BytesType {
			if n = protowire.ConsumeFieldValue(num, typ, unknown); n < 0 {
				return nil, errCorrupt
			}
			unknown = unknown[n:]
			continue
		}
		v, n := protowire.ConsumeString(unknown)
		if n < 0 {
			return nil, errCorrupt
		}
		unknown = unknown[n:]
		switch num {
		case fieldAudience:
			r.audience = v
		case fieldTolokaPoolID:
			r.tolokaPoolID = v
		case fieldRevision:
			r.revisions = append(r.revisions, v)
		}
	}
	r.session.ProtoReflect().SetUnknown(nil)
	return r, nil
}

// splitPlatformURL returns the parts of a redirect to platformURL with a
// code: base + "code=" + code + suffix. platformURL must be an absolute
// http(s) URL; a "code" parameter it already has is replaced.
func splitPlatformURL(platformURL string) (base, suffix string, err error) {
	u, err := url.Parse(platformURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.Opaque != "" {
		return "", "", fmt.Errorf("session: platform_url %q is not an absolute http(s) URL", platformURL)
	}
	if f := u.EscapedFragment(); f != "" {
		suffix = "#" + f
	}
	u.Fragment, u.RawFragment = "", ""
	if q := u.Query(); q.Has("code") {
		q.Del("code")
		u.RawQuery = q.Encode()
	}
	u.ForceQuery = false
	base = u.String()
	if u.RawQuery == "" {
		base += "?"
	} else {
		base += "&"
	}
	return base, suffix, nil
}
