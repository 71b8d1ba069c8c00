package crowdload

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
)

func TestTheBareSenderMakesDeliveriesTheReceiverVerifies(t *testing.T) {
	h, err := NewWebhookReceiver(0, nil, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	secret := testSecret(7)
	if err := h.SetSecret(secret); err != nil {
		t.Fatal(err)
	}
	raw, err := protojson.Marshal(testEvent("evt_bare", "session.started"))
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "event.json")
	if err := os.WriteFile(file, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv(senderSecretEnv, secret)
	var out bytes.Buffer
	if err := RunSender(context.Background(), []string{"--url", h.URL(), "--event", file, "--concurrency", "4", "--duration", "200ms"}, &out); err != nil {
		t.Fatal(err)
	}
	var rep senderReport
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("report %q: %v", out.String(), err)
	}
	st := h.Stats()
	if rep.OK == 0 || rep.Other != 0 || st.Verified != rep.OK || st.BadSignature != 0 {
		t.Errorf("sender: %d answered 2xx, %d not; receiver: %d verified, %d bad signatures; want every request verified", rep.OK, rep.Other, st.Verified, st.BadSignature)
	}
	if rep.ElapsedNs < int64(200*time.Millisecond) || rep.P99Ns <= 0 {
		t.Errorf("elapsed %v, p99 %v; want at least the 200 ms asked for and a latency", time.Duration(rep.ElapsedNs), time.Duration(rep.P99Ns))
	}
}
