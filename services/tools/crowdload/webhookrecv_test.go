package crowdload

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/timestamppb"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
)

// testSecret returns a "whsec_" secret made of b.
func testSecret(b byte) string {
	return "whsec_" + base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{b}, 24))
}

func testEvent(id, typ string) *crowdgatev1.Event {
	return &crowdgatev1.Event{
		EventId: id, Type: typ, TenantId: "default", Resource: "sessions/ses_1",
		CreateTime: timestamppb.New(time.Now().Add(-time.Second)),
		Data: &crowdgatev1.Event_Session{Session: &crowdgatev1.Session{
			SessionId: "ses_1", PoolId: "pool_1", UserId: "u1", AssignmentId: "a1",
			State: crowdgatev1.SessionState_SESSION_STATE_ACTIVE,
		}},
	}
}

// delivery is one POST to the receiver.
type delivery struct {
	id     string // webhook-id header ("" leaves the headers out)
	body   []byte
	secret string // signs with this secret (the library's Sign)
	ts     time.Time
	signed []byte // the body signed, when not body (tampering)
}

func signed(t *testing.T, secret, id string, ev *crowdgatev1.Event) delivery {
	t.Helper()
	body, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	return delivery{id: id, body: body, secret: secret, ts: time.Now()}
}

func post(t *testing.T, url string, d delivery) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(d.body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if d.id != "" {
		wh, err := standardwebhooks.NewWebhook(d.secret)
		if err != nil {
			t.Fatal(err)
		}
		signedBody := d.body
		if d.signed != nil {
			signedBody = d.signed
		}
		sig, err := wh.Sign(d.id, d.ts, signedBody)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set(standardwebhooks.HeaderWebhookID, d.id)
		req.Header.Set(standardwebhooks.HeaderWebhookTimestamp, fmt.Sprint(d.ts.Unix()))
		req.Header.Set(standardwebhooks.HeaderWebhookSignature, sig)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// The receiver verifies each delivery with the Standard Webhooks library:
// a good one is a receipt (a second one of the same id a duplicate); a
// wrong secret, a stale timestamp, missing headers, a body that is not the
// webhook-id's event, or a delivery before the secret is known are refused
// and counted as such, never as receipts.
func TestWebhookReceiverVerifies(t *testing.T) {
	h, err := NewWebhookReceiver(0, nil, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	secret := testSecret(7)
	good := signed(t, secret, "evt_a", testEvent("evt_a", "session.started"))

	if got := post(t, h.URL(), good); got != http.StatusServiceUnavailable {
		t.Errorf("before the secret: %d, want 503", got)
	}
	if err := h.SetSecret(secret); err != nil {
		t.Fatal(err)
	}
	wrongSecret := good
	wrongSecret.secret = testSecret(8)
	stale := good
	stale.ts = time.Now().Add(-10 * time.Minute)
	unsigned := good
	unsigned.id = ""
	otherID := signed(t, secret, "evt_b", testEvent("evt_a", "session.started"))
	notJSON := delivery{id: "evt_c", body: []byte("not json"), secret: secret, ts: time.Now()}
	tampered := good
	tampered.signed = good.body
	tampered.body = bytes.Replace(bytes.Clone(good.body), []byte("u1"), []byte("u2"), 1)

	steps := []struct {
		name string
		d    delivery
		want int
	}{
		{"good", good, http.StatusNoContent},
		{"the same again (a duplicate)", good, http.StatusNoContent},
		{"signed with another secret", wrongSecret, http.StatusUnauthorized},
		{"timestamp 10 minutes old", stale, http.StatusUnauthorized},
		{"no signature headers", unsigned, http.StatusUnauthorized},
		{"body tampered with after signing", tampered, http.StatusUnauthorized},
		{"event_id is not the webhook-id", otherID, http.StatusBadRequest},
		{"not an event", notJSON, http.StatusBadRequest},
	}
	for _, s := range steps {
		if got := post(t, h.URL(), s.d); got != s.want {
			t.Errorf("%s: answered %d, want %d", s.name, got, s.want)
		}
	}
	want := ReceiverStats{Requests: 9, Verified: 2, BadSignature: 4, Malformed: 2, NotReady: 1, Accepted: 2, Distinct: 1, Duplicates: 1}
	if diff := cmp.Diff(want, h.Stats()); diff != "" {
		t.Errorf("stats (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[string]bool{"evt_a": true}, h.AcceptedIDs()); diff != "" {
		t.Errorf("accepted ids (-want +got):\n%s", diff)
	}
	rc := h.Receipts()["evt_a"]
	if rc.Accepted != 2 || rc.Type != "session.started" || rc.Resource != "sessions/ses_1" || rc.First.Before(rc.Created) {
		t.Errorf("receipt of evt_a: %+v", rc)
	}
	if errs := h.Errors(); len(errs) != 6 || !strings.Contains(strings.Join(errs, "\n"), "no matching signature") {
		t.Errorf("refusal examples: %q", errs)
	}
}

// With a fail rate, verified deliveries are answered 503 and counted apart
// from receipts; the id is a receipt only once answered 2xx.
func TestWebhookReceiverFailsOnPurpose(t *testing.T) {
	h, err := NewWebhookReceiver(1, nil, 1) // every delivery fails
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	secret := testSecret(3)
	if err := h.SetSecret(secret); err != nil {
		t.Fatal(err)
	}
	d := signed(t, secret, "evt_x", testEvent("evt_x", "session.ended"))
	for range 3 {
		if got := post(t, h.URL(), d); got != http.StatusServiceUnavailable {
			t.Fatalf("answered %d, want 503", got)
		}
	}
	if ids := h.AcceptedIDs(); len(ids) != 0 {
		t.Errorf("accepted %v while failing every delivery", ids)
	}
	changed := h.Changed()
	h.SetFailRate(0)
	if got := post(t, h.URL(), d); got != http.StatusNoContent {
		t.Fatalf("answered %d, want 204", got)
	}
	select {
	case <-changed:
	default:
		t.Error("Changed was not closed by an accepted delivery")
	}
	want := ReceiverStats{Requests: 4, Verified: 4, FailedOnPurpose: 3, Accepted: 1, Distinct: 1}
	if diff := cmp.Diff(want, h.Stats()); diff != "" {
		t.Errorf("stats (-want +got):\n%s", diff)
	}
	if rc := h.Receipts()["evt_x"]; rc.Failed != 3 || rc.Accepted != 1 {
		t.Errorf("receipt %+v, want 3 failed and 1 accepted", rc)
	}
}

// --webhook-print writes one line per event, when it is first accepted.
func TestWebhookReceiverPrints(t *testing.T) {
	var out syncWriter
	var buf bytes.Buffer
	out.w = &buf
	h, err := NewWebhookReceiver(0, &out, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	secret := testSecret(5)
	if err := h.SetSecret(secret); err != nil {
		t.Fatal(err)
	}
	ev := testEvent("evt_p", "session.ended")
	s := ev.GetSession()
	s.State, s.EndReason = crowdgatev1.SessionState_SESSION_STATE_ENDED, crowdgatev1.EndReason_END_REASON_CLOSE_SESSION
	d := signed(t, secret, "evt_p", ev)
	post(t, h.URL(), d)
	post(t, h.URL(), d)
	out.mu.Lock()
	got := buf.String()
	out.mu.Unlock()
	if n := strings.Count(got, "\n"); n != 1 {
		t.Errorf("%d lines, want 1:\n%s", n, got)
	}
	for _, want := range []string{"session.ended", "sessions/ses_1", "user=u1", "state=ENDED", "end_reason=CLOSE_SESSION"} {
		if !strings.Contains(got, want) {
			t.Errorf("line lacks %q: %s", want, got)
		}
	}
}

func TestEventLine(t *testing.T) {
	at := timestamppb.New(time.Date(2026, 12, 6, 12, 0, 1, 500e6, time.UTC))
	tests := []struct {
		ev   *crowdgatev1.Event
		want string
	}{
		{&crowdgatev1.Event{Type: "submission.delivered", Resource: "submissions/sub_1", CreateTime: at,
			Data: &crowdgatev1.Event_Submission{Submission: &crowdgatev1.Submission{
				UserId: "u1", RetryId: "r1", Reward: "0.50", State: crowdgatev1.SubmissionState_SUBMISSION_STATE_DELIVERED, CloseSession: new(bool(true)),
			}}},
			"12:00:01.500 submission.delivered       submissions/sub_1                             user=u1 retry_id=r1 reward=0.50 state=DELIVERED close_session=true"},
		{&crowdgatev1.Event{Type: "pool.opened", Resource: "pools/pool_1", CreateTime: at,
			Data: &crowdgatev1.Event_Pool{Pool: &crowdgatev1.Pool{TolokaPoolId: "2", Status: crowdgatev1.PoolStatus_POOL_STATUS_OPEN}}},
			"12:00:01.500 pool.opened                pools/pool_1                                  toloka_pool=2 status=OPEN"},
	}
	for _, tt := range tests {
		if got := EventLine(tt.ev); got != tt.want {
			t.Errorf("EventLine:\n got %q\nwant %q", got, tt.want)
		}
	}
}
