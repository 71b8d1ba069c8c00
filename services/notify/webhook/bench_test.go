package webhook

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
	"github.com/crowdgate/crowdgate/services/notify/events"
)

// BenchmarkFanOutToOneEndpoint appends b.N events and waits until one
// local endpoint has received each, signed: events delivered per second
// and the p99 from an event's append to its receipt. With REDIS_URL it
// uses that Redis, else miniredis (one Lua interpreter in-process).
// Events are appended at WEBHOOK_BENCH_RATE a second (0, the default: all
// at once, a burst whose p99 is mostly queueing).
//
//	REDIS_URL=redis://127.0.0.1:6379/0 go test -run '^$' -bench FanOut -benchtime 5000x ./services/notify/webhook/
func BenchmarkFanOutToOneEndpoint(b *testing.B) {
	f := newFixture(b, func(c *Config) {
		c.Now = time.Now
		c.Settings.Concurrency = 128
		c.Settings.PollInterval = 50 * time.Millisecond
	})
	var (
		mu       sync.Mutex
		sent     = map[string]time.Time{}
		got      = map[string]bool{}
		lat      []time.Duration
		received = make(chan struct{}, 1)
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get("webhook-id")
		now := time.Now()
		mu.Lock()
		if at, ok := sent[id]; ok && !got[id] {
			got[id] = true
			lat = append(lat, now.Sub(at))
			if len(got) == b.N {
				received <- struct{}{}
			}
		}
		mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	b.Cleanup(srv.Close)
	f.create(f.ctx, srv.URL)
	f.run(f.svc)
	rate, _ := strconv.Atoi(os.Getenv("WEBHOOK_BENCH_RATE"))
	b.ResetTimer()
	start := time.Now()
	for i := range b.N {
		if rate > 0 {
			if d := time.Until(start.Add(time.Duration(i) * time.Second / time.Duration(rate))); d > 0 {
				time.Sleep(d) // pacing the load generator, not waiting for a result
			}
		}
		ev := &crowdgatev1.Event{
			EventId: events.ID("bench", fmt.Sprint(i)), Type: events.TypeSubmissionDelivered, TenantId: "t1",
			Resource: fmt.Sprintf("submissions/sub-%d", i), CreateTime: timestamppb.Now(),
			Data: &crowdgatev1.Event_Submission{Submission: &crowdgatev1.Submission{SubmissionId: fmt.Sprint("sub-", i), Reward: "0.05"}},
		}
		mu.Lock()
		sent[ev.EventId] = time.Now()
		mu.Unlock()
		if err := f.log.Append(f.ctx, ev); err != nil {
			b.Fatal(err)
		}
	}
	select {
	case <-received:
	case <-time.After(5 * time.Minute):
		b.Fatalf("received %d of %d", len(got), b.N)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "events/s")
	b.ReportMetric(float64(lat[len(lat)*99/100].Milliseconds()), "p99-ms")
	b.ReportMetric(float64(lat[len(lat)/2].Milliseconds()), "p50-ms")
}
