package crowdload

import (
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"google.golang.org/protobuf/encoding/protojson"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
)

// maxWebhookBody bounds a delivery's body the receiver reads (Crowdgate
// sends at most 256 KiB).
const maxWebhookBody = 1 << 20

// WebhookReceiver is a webhook endpoint on 127.0.0.1 that receives
// Crowdgate's deliveries, verifies every one with the Standard Webhooks
// project's own Go library (github.com/standard-webhooks/standard-webhooks/
// libraries/go, not Crowdgate's signing code), and counts receipts per
// webhook-id. It answers a configurable fraction of verified deliveries
// with 503 to make Crowdgate retry; those are not receipts.
//
// Use NewWebhookReceiver, then SetSecret with the secret
// CreateWebhookEndpoint returned; until then every delivery is answered 503
// (not counted as a receipt, so Crowdgate retries it).
type WebhookReceiver struct {
	ln  net.Listener
	srv *http.Server
	url string
	now func() time.Time

	mu       sync.Mutex
	wh       *standardwebhooks.Webhook
	failRate float64
	rng      *mrand.Rand
	print    io.Writer
	stats    ReceiverStats
	receipts map[string]*Receipt
	order    []string // ids in order of first receipt
	errs     []string // examples of refused deliveries
	changed  chan struct{}
}

// Receipt is what the receiver got for one webhook-id.
type Receipt struct {
	// Type is the event's type.
	Type string
	// Resource is the event's resource.
	Resource string
	// Accepted counts deliveries answered 2xx; more than one is a
	// duplicate (allowed: delivery is at least once).
	Accepted int
	// Failed counts deliveries answered 503 on purpose (--webhook-fail-rate).
	Failed int
	// Created is the event's create_time; First is when the receiver first
	// answered it 2xx.
	Created, First time.Time
}

// ReceiverStats counts what the receiver answered.
type ReceiverStats struct {
	// Requests counts every request to the endpoint.
	Requests int64
	// Verified counts deliveries whose signature the library verified.
	Verified int64
	// BadSignature counts deliveries the library refused (missing
	// headers, wrong signature, timestamp out of tolerance): answered 401.
	BadSignature int64
	// Malformed counts verified deliveries whose body is not an Event, or
	// whose event_id is not the webhook-id: answered 400.
	Malformed int64
	// NotReady counts deliveries that came before the secret was known:
	// answered 503.
	NotReady int64
	// FailedOnPurpose counts verified deliveries answered 503 by
	// --webhook-fail-rate.
	FailedOnPurpose int64
	// Accepted counts deliveries answered 204; Distinct counts distinct
	// webhook-ids among them, Duplicates the rest.
	Accepted, Distinct, Duplicates int64
}

// NewWebhookReceiver listens on a random port of 127.0.0.1. failRate (0..1)
// is the fraction of verified deliveries answered 503; print, when not nil,
// gets one line per event as it is first accepted; seed seeds the failure
// draws.
func NewWebhookReceiver(failRate float64, print io.Writer, seed uint64) (*WebhookReceiver, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("webhook receiver: %w", err)
	}
	r := &WebhookReceiver{
		ln: ln, url: "http://" + ln.Addr().String() + "/webhook", now: time.Now,
		failRate: failRate, rng: mrand.New(mrand.NewPCG(seed, 0x3eb600c)), print: print,
		receipts: map[string]*Receipt{}, changed: make(chan struct{}),
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /webhook", r.serve)
	r.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = r.srv.Serve(ln) }()
	return r, nil
}

// URL is the endpoint's URL, to register with CreateWebhookEndpoint.
func (r *WebhookReceiver) URL() string { return r.url }

// Close stops the listener.
func (r *WebhookReceiver) Close() error { return r.srv.Close() }

// SetSecret sets the endpoint's signing secret ("whsec_...").
func (r *WebhookReceiver) SetSecret(secret string) error {
	wh, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		return fmt.Errorf("webhook secret: %w", err)
	}
	r.mu.Lock()
	r.wh = wh
	r.mu.Unlock()
	return nil
}

// SetFailRate changes the fraction of verified deliveries answered 503.
func (r *WebhookReceiver) SetFailRate(rate float64) {
	r.mu.Lock()
	r.failRate = rate
	r.mu.Unlock()
}

var eventJSON = protojson.UnmarshalOptions{DiscardUnknown: true}

func (r *WebhookReceiver) serve(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(io.LimitReader(req.Body, maxWebhookBody))
	r.mu.Lock()
	r.stats.Requests++
	wh := r.wh
	r.mu.Unlock()
	if err != nil {
		r.refuse(w, http.StatusBadRequest, &r.stats.Malformed, "reading the body: "+err.Error())
		return
	}
	if wh == nil {
		r.refuse(w, http.StatusServiceUnavailable, &r.stats.NotReady, "")
		return
	}
	if err := wh.Verify(body, req.Header); err != nil {
		r.refuse(w, http.StatusUnauthorized, &r.stats.BadSignature, "signature: "+err.Error())
		return
	}
	id := req.Header.Get(standardwebhooks.HeaderWebhookID)
	ev := new(crowdgatev1.Event)
	if err := eventJSON.Unmarshal(body, ev); err != nil {
		r.refuse(w, http.StatusBadRequest, &r.stats.Malformed, "body: "+err.Error())
		return
	}
	if ev.GetEventId() != id {
		r.refuse(w, http.StatusBadRequest, &r.stats.Malformed, fmt.Sprintf("webhook-id %q but event_id %q", id, ev.GetEventId()))
		return
	}
	now := r.now()
	r.mu.Lock()
	r.stats.Verified++
	rc := r.receipts[id]
	if rc == nil {
		rc = &Receipt{Type: ev.GetType(), Resource: ev.GetResource()}
		if ct := ev.GetCreateTime(); ct != nil {
			rc.Created = ct.AsTime()
		}
		r.receipts[id] = rc
	}
	if r.failRate > 0 && r.rng.Float64() < r.failRate {
		r.stats.FailedOnPurpose++
		rc.Failed++
		r.mu.Unlock()
		http.Error(w, "failing on purpose (--webhook-fail-rate)", http.StatusServiceUnavailable)
		return
	}
	r.stats.Accepted++
	rc.Accepted++
	first := rc.Accepted == 1
	if first {
		rc.First = now
		r.stats.Distinct++
		r.order = append(r.order, id)
		if r.print != nil {
			fmt.Fprintln(r.print, EventLine(ev))
		}
	} else {
		r.stats.Duplicates++
	}
	close(r.changed)
	r.changed = make(chan struct{})
	r.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

// refuse answers status and counts the delivery under *n.
func (r *WebhookReceiver) refuse(w http.ResponseWriter, status int, n *int64, why string) {
	r.mu.Lock()
	*n++
	if why != "" && len(r.errs) < 20 {
		r.errs = append(r.errs, why)
	}
	r.mu.Unlock()
	http.Error(w, http.StatusText(status), status)
}

// Stats returns the counts so far.
func (r *WebhookReceiver) Stats() ReceiverStats {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.stats
}

// Errors returns examples of refused deliveries.
func (r *WebhookReceiver) Errors() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.errs)
}

// Receipts returns a copy of the receipts by webhook-id.
func (r *WebhookReceiver) Receipts() map[string]Receipt {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]Receipt, len(r.receipts))
	for id, rc := range r.receipts {
		out[id] = *rc
	}
	return out
}

// AcceptedIDs returns the set of webhook-ids answered 2xx at least once.
func (r *WebhookReceiver) AcceptedIDs() map[string]bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]bool, len(r.order))
	for _, id := range r.order {
		out[id] = true
	}
	return out
}

// Changed returns a channel closed at the next accepted delivery.
func (r *WebhookReceiver) Changed() <-chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.changed
}

// EventLine renders an event as the receiver prints it: type, resource and
// the resource's key state fields.
func EventLine(ev *crowdgatev1.Event) string {
	var b strings.Builder
	ts := ""
	if ct := ev.GetCreateTime(); ct != nil {
		ts = ct.AsTime().UTC().Format("15:04:05.000")
	}
	fmt.Fprintf(&b, "%s %-26s %-45s", ts, ev.GetType(), ev.GetResource())
	kv := func(k, v string) {
		if v != "" {
			fmt.Fprintf(&b, " %s=%s", k, v)
		}
	}
	switch d := ev.GetData().(type) {
	case *crowdgatev1.Event_Session:
		s := d.Session
		kv("user", s.GetUserId())
		kv("assignment", s.GetAssignmentId())
		kv("state", strings.TrimPrefix(s.GetState().String(), "SESSION_STATE_"))
		if s.GetEndReason() != crowdgatev1.EndReason_END_REASON_UNSPECIFIED {
			kv("end_reason", strings.TrimPrefix(s.GetEndReason().String(), "END_REASON_"))
		}
	case *crowdgatev1.Event_Submission:
		s := d.Submission
		kv("user", s.GetUserId())
		kv("retry_id", s.GetRetryId())
		kv("reward", s.GetReward())
		kv("state", strings.TrimPrefix(s.GetState().String(), "SUBMISSION_STATE_"))
		if s.GetCloseSession() {
			kv("close_session", "true")
		}
	case *crowdgatev1.Event_Assignment:
		a := d.Assignment
		kv("user", a.GetUserId())
		kv("status", a.GetStatus().String())
	case *crowdgatev1.Event_Pool:
		p := d.Pool
		kv("toloka_pool", p.GetTolokaPoolId())
		kv("status", strings.TrimPrefix(p.GetStatus().String(), "POOL_STATUS_"))
		if p.GetLastCloseReason() != 0 {
			kv("last_close_reason", p.GetLastCloseReason().String())
		}
	case *crowdgatev1.Event_Project:
		kv("status", d.Project.GetStatus().String())
	case *crowdgatev1.Event_WebhookEndpoint:
		kv("state", d.WebhookEndpoint.GetState().String())
		kv("reason", d.WebhookEndpoint.GetDisabledReason())
	}
	return b.String()
}
