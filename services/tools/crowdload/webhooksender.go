package crowdload

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"google.golang.org/protobuf/encoding/protojson"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
)

// The bare sender is the webhook benchmark's fourth phase: a Go process
// that does per delivery only what any sender must (encode the event as
// protojson, sign it, POST it with net/http over keep-alive connections,
// read the answer) and nothing a durable one adds (no Redis, no record
// of the attempt, no lease). Its rate beside the ceiling bounds what any
// Go dispatcher built on net/http can reach on the machine: the gateway
// does all of this per event, and more.

// SenderSubcommand is crowdload's hidden subcommand that runs the bare
// sender in a process of its own (so its CPU is counted apart from the
// receiver's).
const SenderSubcommand = "webhook-sender"

// senderSecretEnv carries the receiver's secret to the sender process.
const senderSecretEnv = "CROWDLOAD_SENDER_SECRET"

// senderReport is what the sender process prints, one JSON object.
type senderReport struct {
	OK, Other    int64
	ElapsedNs    int64
	P50Ns, P99Ns int64
}

// RunSender is the sender process: it POSTs the event in --event (its
// protojson) to --url from --concurrency goroutines for --duration, signed
// with the secret in $CROWDLOAD_SENDER_SECRET, and prints a senderReport
// to out.
func RunSender(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet(SenderSubcommand, flag.ContinueOnError)
	url := fs.String("url", "", "receiver URL")
	eventFile := fs.String("event", "", "file holding the event's protojson")
	concurrency := fs.Int("concurrency", 64, "requests in flight (the gateway's CROWDGATE_WEBHOOK_CONCURRENCY default)")
	duration := fs.Duration("duration", 5*time.Second, "how long to send")
	if err := fs.Parse(args); err != nil {
		return err
	}
	raw, err := os.ReadFile(*eventFile)
	if err != nil {
		return err
	}
	ev := &crowdgatev1.Event{}
	if err := protojson.Unmarshal(raw, ev); err != nil {
		return err
	}
	wh, err := standardwebhooks.NewWebhook(os.Getenv(senderSecretEnv))
	if err != nil {
		return err
	}
	// The gateway's delivery transport, without its address guard.
	client := &http.Client{
		Transport: &http.Transport{
			MaxIdleConns:        max(*concurrency, 100),
			MaxIdleConnsPerHost: *concurrency,
			IdleConnTimeout:     90 * time.Second,
			ForceAttemptHTTP2:   true,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Timeout:       10 * time.Second,
	}
	ctx, cancel := context.WithTimeout(ctx, *duration)
	defer cancel()
	opts := protojson.MarshalOptions{UseProtoNames: true}
	var mu sync.Mutex
	var rep senderReport
	var lat []time.Duration
	var wg sync.WaitGroup
	start := time.Now()
	for range *concurrency {
		wg.Go(func() {
			var mine []time.Duration
			var ok, other int64
			for ctx.Err() == nil {
				t0 := time.Now()
				body, err := opts.Marshal(ev)
				if err != nil {
					other++
					continue
				}
				sig, err := wh.Sign(ev.GetEventId(), t0, body)
				if err != nil {
					other++
					continue
				}
				req, _ := http.NewRequestWithContext(context.WithoutCancel(ctx), http.MethodPost, *url, bytes.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("webhook-id", ev.GetEventId())
				req.Header.Set("webhook-timestamp", strconv.FormatInt(t0.Unix(), 10))
				req.Header.Set("webhook-signature", sig)
				resp, err := client.Do(req)
				if err != nil {
					other++
					continue
				}
				_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
				_ = resp.Body.Close()
				if resp.StatusCode/100 != 2 {
					other++
					continue
				}
				ok++
				mine = append(mine, time.Since(t0))
			}
			mu.Lock()
			rep.OK, rep.Other, lat = rep.OK+ok, rep.Other+other, append(lat, mine...)
			mu.Unlock()
		})
	}
	wg.Wait()
	rep.ElapsedNs = int64(time.Since(start))
	s := Summarize(lat)
	rep.P50Ns, rep.P99Ns = int64(s.P50), int64(s.P99)
	return json.NewEncoder(out).Encode(rep)
}

// runBareSender runs the sender process against the receiver at url for
// d, with ev signed with secret, and returns its phase: answers, their
// latency, and the CPU of every process in procs and of the sender
// ("sender").
func runBareSender(ctx context.Context, dir, url, secret string, ev *crowdgatev1.Event, d time.Duration, procs map[string]int) (FanoutPhase, error) {
	p := FanoutPhase{Name: "bare Go sender (no Redis) against the receiver"}
	raw, err := protojson.Marshal(ev)
	if err != nil {
		return p, err
	}
	file := filepath.Join(dir, "sender-event.json")
	if err := os.WriteFile(file, raw, 0o600); err != nil {
		return p, err
	}
	self, err := os.Executable()
	if err != nil {
		return p, err
	}
	cmd := exec.CommandContext(ctx, self, SenderSubcommand, "--url", url, "--event", file, "--duration", d.String())
	cmd.Env = append(os.Environ(), senderSecretEnv+"="+secret)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	before := cpuTimes(procs)
	err = cmd.Run()
	p.CPU = cpuSince(procs, before)
	if cmd.ProcessState != nil {
		p.CPU["sender"] = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	}
	if err != nil {
		return p, fmt.Errorf("the bare sender: %v: %s", err, stderr.String())
	}
	var rep senderReport
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		return p, fmt.Errorf("the bare sender's report %q: %v", stdout.String(), err)
	}
	if rep.Other > 0 {
		return p, fmt.Errorf("the bare sender: %d requests failed or were not answered 2xx (%s)", rep.Other, stderr.String())
	}
	if rep.OK == 0 {
		return p, errors.New("the bare sender made no delivery")
	}
	p.Events, p.Elapsed = rep.OK, time.Duration(rep.ElapsedNs)
	p.P50, p.P99 = time.Duration(rep.P50Ns), time.Duration(rep.P99Ns)
	return p, nil
}
