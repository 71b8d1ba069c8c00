package crowdload

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// Each 429 burst is ended after at most burstWindow, so a lone client is
// not throttled forever by bursts it cannot use up.
func TestBurstsEnd(t *testing.T) {
	got := make(chan EmulatorFaults, 16)
	emu := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var f EmulatorFaults
		if r.URL.Path != "/_admin/faults" || json.NewDecoder(r.Body).Decode(&f) != nil {
			http.Error(w, "unexpected", http.StatusBadRequest)
			return
		}
		got <- f
		w.WriteHeader(http.StatusNoContent)
	}))
	defer emu.Close()
	r, closeRunner := newRunner(Config{ThrottleBurst: 20, ThrottleEvery: 10 * time.Millisecond, Seed: 7}, io.Discard)
	defer closeRunner(nil)
	r.emu = newEmulator(emu.URL, emu.Client())
	r.res.Faults = EmulatorFaults{ThrottleRate: 0.1}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.burstLoop(ctx); close(done) }()
	for i, want := range []int{20, 0, 20, 0} {
		f := <-got
		if f.ThrottleNext != want || f.ThrottleRate != 0.1 {
			t.Errorf("faults set %d: throttle_next %d, throttle rate %v; want %d, 0.1", i+1, f.ThrottleNext, f.ThrottleRate, want)
		}
	}
	cancel()
	<-done
}
