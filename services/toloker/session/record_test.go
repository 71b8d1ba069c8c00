package session

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/timestamppb"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
	"github.com/crowdgate/crowdgate/services/platform/toloka"
)

func TestSessionIDsAndCodesCarryTheAssignment(t *testing.T) {
	const aid = "00022cfa46--637cf4098ccdeb4a260737de"
	bin, ok := toloka.AssignmentIDBytes(aid)
	if !ok {
		t.Fatal("AssignmentIDBytes refused a valid id")
	}
	sid := newSessionID(bin)
	if got, ok := assignmentOfSession(sid); !ok || got != aid || len(sid) != sessionIDLen {
		t.Errorf("session id %q gives %q, %v", sid, got, ok)
	}
	if sid == newSessionID(bin) {
		t.Error("two session ids for one assignment are equal")
	}
	m := newCodeMinter([]byte("a key of CodeKeySize bytes......"))
	expiry := time.UnixMilli(1_800_000_000_123)
	raw := m.mint(bin, expiry)
	minted, nonce := raw.String(), raw.nonce()
	got, shaped, authentic := m.parseCode(minted)
	if !shaped || !authentic || len(minted) != codeLen {
		t.Fatalf("code %q: shaped %v, authentic %v, length %d (want %d)", minted, shaped, authentic, len(minted), codeLen)
	}
	if diff := cmp.Diff(code{aid: aid, expiry: expiry, nonce: nonce}, got, cmp.AllowUnexported(code{})); diff != "" {
		t.Errorf("parsed code (-want +got):\n%s", diff)
	}
	if again := m.mint(bin, expiry); again.String() == minted || again.nonce() == nonce {
		t.Error("two codes for one assignment and expiry are equal")
	}
	// Any changed byte, or another key, makes a code not authentic.
	for i := range raw {
		altered := append([]byte(nil), raw[:]...)
		altered[i] ^= 0x20
		if _, shaped, authentic := m.parseCode(base64.RawURLEncoding.EncodeToString(altered)); !shaped || authentic {
			t.Errorf("code with byte %d altered: shaped %v, authentic %v", i, shaped, authentic)
		}
	}
	if _, _, authentic := newCodeMinter([]byte("another key of CodeKeySize bytes")).parseCode(minted); authentic {
		t.Error("a code is authentic under another key")
	}
	for _, bad := range []string{"", "abc", minted + "A", minted[:len(minted)-1], strings.Repeat("!", len(minted))} {
		if _, shaped, _ := m.parseCode(bad); shaped {
			t.Errorf("parseCode(%q) says it is shaped like a code", bad)
		}
	}
	for _, bad := range []string{"", "ses_", sid[:len(sid)-1], "ses_" + sid[4:len(sid)-1] + "!", "xyz_" + sid[4:]} {
		if _, ok := assignmentOfSession(bad); ok {
			t.Errorf("assignmentOfSession(%q) accepted it", bad)
		}
	}
}

func TestRecordRoundTrip(t *testing.T) {
	base, suffix, err := splitPlatformURL("https://p.example/a?x=1#frag")
	if err != nil {
		t.Fatal(err)
	}
	in := &record{
		session: &crowdgatev1.Session{
			SessionId: "ses_x", TenantId: "t", ProjectId: "prj", PoolId: "pool", AssignmentId: "a", UserId: "u",
			State: crowdgatev1.SessionState_SESSION_STATE_ACTIVE, CreateTime: timestamppb.Now(), ReturnUrl: "https://toloka.ai/tasks",
			SubmitsCount: 3, RewardTotal: "0.15",
		},
		redirectBase: base, redirectSuffix: suffix, audience: "https://p.example", tolokaPoolID: "42",
	}
	b, err := in.marshal()
	if err != nil {
		t.Fatal(err)
	}
	if b[0] != stateActive {
		t.Errorf("state byte %q", b[0])
	}
	out, err := unmarshalRecord(b)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(in.session, out.session, protocmp.Transform()); diff != "" {
		t.Errorf("session (-in +out):\n%s", diff)
	}
	if out.redirectBase != "https://p.example/a?x=1&" || out.redirectSuffix != "#frag" || out.audience != in.audience || out.tolokaPoolID != "42" {
		t.Errorf("extras %+v", out)
	}
	for _, corrupt := range [][]byte{nil, {'A'}, {'X', 0, 0}, {'A', 200, 1, 'x'}, append([]byte{'A', 0, 0}, 0xff, 0xff)} {
		if _, err := unmarshalRecord(corrupt); !errors.Is(err, errCorrupt) {
			t.Errorf("unmarshalRecord(%v) = %v, want errCorrupt", corrupt, err)
		}
	}
}

func TestARecordKeepsItsLastRevisions(t *testing.T) {
	var revs []string
	for i := range 10 {
		revs = withRevision(revs, newRevision())
		if want := min(i+1, keptRevisions); len(revs) != want {
			t.Fatalf("after %d changes the record keeps %d revisions, want %d", i+1, len(revs), want)
		}
	}
	r := &record{session: &crowdgatev1.Session{SessionId: "ses_1", TenantId: "t"}, redirectBase: "https://p.example/?", revisions: revs}
	b, err := r.marshal()
	if err != nil {
		t.Fatal(err)
	}
	got, err := unmarshalRecord(b)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(revs, got.revisions); diff != "" {
		t.Errorf("revisions after a round trip (-want +got):\n%s", diff)
	}
	for _, rev := range revs {
		if len(rev) != revisionSize || !strings.Contains(string(b), rev) {
			t.Errorf("revision %x is not in the stored record as its %d bytes", rev, revisionSize)
		}
	}
}
