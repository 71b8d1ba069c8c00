// Package exportbench measures the export's memory (issue 18): it writes
// N delivered submissions of one pool straight into Redis (the outbox's
// layout, submission.SeedDelivered), runs a real gateway process against
// that Redis, exports the pool over REST (GET
// /v1/pools/{pool_id}/submissions:export, JSON Lines or CSV) and reports
// the row rate beside the gateway's memory: its peak RSS (VmHWM, the whole
// process's life), the highest RSS and Go heap sampled while the export
// ran. It checks every row arrived once, in order, and that the rewards add
// up exactly to what was written. cmd/exportbench is its command line.
package exportbench

import (
	"bufio"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/timestamppb"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
	"github.com/crowdgate/crowdgate/services/kernel/money"
	"github.com/crowdgate/crowdgate/services/toloker/submission"
)

// Config is one run.
type Config struct {
	// RedisURL is an EMPTY Redis database, flushed afterwards unless Keep.
	RedisURL string
	// Crowdgate is the crowdgate binary.
	Crowdgate string
	// N is how many submissions are written and exported.
	N int
	// Format is "ndjson" or "csv".
	Format string
	// LimitMiB is the gateway's allowed peak RSS.
	LimitMiB float64
	// Keep keeps the data (no FLUSHDB).
	Keep bool
	// GatewayEnv is more environment of the gateway, comma-separated.
	GatewayEnv string
}

// ParseFlags reads the command line.
func ParseFlags(args []string) (Config, error) {
	var c Config
	fs := flag.NewFlagSet("exportbench", flag.ContinueOnError)
	fs.StringVar(&c.RedisURL, "redis", "redis://127.0.0.1:6379/9", "an EMPTY Redis database to use (flushed afterwards)")
	fs.StringVar(&c.Crowdgate, "crowdgate", "", "the crowdgate binary (go build -o /tmp/crowdgate ./cmd/crowdgate)")
	fs.IntVar(&c.N, "n", 1_000_000, "submissions to export")
	fs.StringVar(&c.Format, "format", "ndjson", "ndjson or csv")
	fs.Float64Var(&c.LimitMiB, "limit", 64, "the gateway's allowed peak RSS, MiB")
	fs.BoolVar(&c.Keep, "keep", false, "keep the data (do not FLUSHDB)")
	fs.StringVar(&c.GatewayEnv, "gateway-env", "", "more environment of the gateway, comma-separated (GOMEMLIMIT=40MiB,GOGC=100)")
	if err := fs.Parse(args); err != nil {
		return Config{}, err
	}
	switch {
	case c.Crowdgate == "":
		return Config{}, errors.New("-crowdgate is required")
	case c.N < 1:
		return Config{}, fmt.Errorf("-n must be at least 1, got %d", c.N)
	case c.Format != "ndjson" && c.Format != "csv":
		return Config{}, fmt.Errorf("-format must be ndjson or csv, got %q", c.Format)
	}
	return c, nil
}

// Run seeds, exports and measures; it fails when a row is missing, the
// rewards differ or the peak RSS is above the limit.
func Run(ctx context.Context, cfg Config) error {
	opt, err := redis.ParseURL(cfg.RedisURL)
	if err != nil {
		return err
	}
	rdb := redis.NewClient(opt)
	defer rdb.Close()
	if size, err := rdb.DBSize(ctx).Result(); err != nil {
		return err
	} else if size != 0 {
		return fmt.Errorf("%s holds %d keys: give an empty database", cfg.RedisURL, size)
	}
	if !cfg.Keep {
		defer func() {
			if err := rdb.FlushDB(context.Background()).Err(); err != nil {
				fmt.Fprintln(os.Stderr, "exportbench: FLUSHDB:", err)
			}
		}()
	}

	httpAddr, grpcAddr, simAddr := freeAddr(), freeAddr(), freeAddr()
	cmd := exec.Command(cfg.Crowdgate, "-toloka-emulator=embedded", "-log-format=text")
	cmd.Env = append(os.Environ(), "REDIS_URL="+cfg.RedisURL, "CROWDGATE_HTTP_ADDR="+httpAddr, "CROWDGATE_GRPC_ADDR="+grpcAddr,
		"CROWDGATE_TOLOKA_EMULATOR_ADDR="+simAddr, "CROWDGATE_REDIS_PREFIX=crowdgate:", "CROWDGATE_AUTH=off",
		// The runtime's GC lines (stderr, in the log) give the live heap.
		"GODEBUG=gctrace=1")
	if cfg.GatewayEnv != "" {
		cmd.Env = append(cmd.Env, strings.Split(cfg.GatewayEnv, ",")...)
	}
	logf, err := os.CreateTemp("", "exportbench-gateway-*.log")
	if err != nil {
		return err
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return err
	}
	defer func() {
		_ = cmd.Process.Signal(os.Interrupt)
		_ = cmd.Wait()
	}()
	base := "http://" + httpAddr
	if err := waitReady(base, 60*time.Second); err != nil {
		return fmt.Errorf("%w (log: %s)", err, logf.Name())
	}

	conn, err := grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	poolID, err := makePool(ctx, conn)
	if err != nil {
		return err
	}

	// The pool's submissions, straight into Redis, with varied rewards
	// whose exact sum the export must reproduce.
	seedStart := time.Now()
	want := money.Zero
	reward := func(i int) string { return strconv.Itoa(i%7) + "." + fmt.Sprintf("%08d", (i*7919)%100000000) }
	for i := range cfg.N {
		d, _ := money.Parse(reward(i))
		want = want.Add(d)
	}
	if err := submission.SeedDelivered(ctx, rdb, "crowdgate:", "default", poolID, cfg.N, time.Now().Add(-time.Hour), func(i int, s *crowdgatev1.Submission) {
		s.UserId, s.Reward = "toloker-"+strconv.Itoa(i%5000), reward(i)
		s.SessionId, s.AssignmentId = "ses_bench", "0000000001--"+fmt.Sprintf("%024d", i)
		s.StartTime, s.EndTime = timestamppb.New(time.Unix(1_800_000_000, 0)), timestamppb.New(time.Unix(1_800_000_060, 0))
	}); err != nil {
		return err
	}
	used, _ := rdb.Info(ctx, "memory").Result()
	fmt.Printf("seeded %d submissions in %s (redis %s)\n", cfg.N, time.Since(seedStart).Round(time.Millisecond), infoField(used, "used_memory_human"))

	pid := cmd.Process.Pid
	rssBefore := procKB(pid, "VmRSS")
	var (
		mu              sync.Mutex
		maxRSS, maxHeap float64
	)
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			rss := float64(procKB(pid, "VmRSS")) * 1024
			heap := scrape(base, "go_memstats_heap_inuse_bytes")
			mu.Lock()
			maxRSS, maxHeap = max(maxRSS, rss), max(maxHeap, heap)
			mu.Unlock()
			select {
			case <-stop:
				return
			case <-t.C:
			}
		}
	}()

	logStart, _ := logf.Seek(0, io.SeekEnd)
	start := time.Now()
	rows, bytes, got, err := exportAll(base+"/v1/pools/"+poolID+"/submissions:export", cfg.Format)
	elapsed := time.Since(start)
	close(stop)
	<-sampled
	if err != nil {
		return err
	}
	hwm := float64(procKB(pid, "VmHWM")) * 1024
	mib := func(b float64) string { return fmt.Sprintf("%.1f MiB", b/(1<<20)) }
	fmt.Printf("exported %d rows (%s, %s) in %s: %.0f rows/s, %.1f MiB/s\n", rows, cfg.Format, mib(float64(bytes)),
		elapsed.Round(time.Millisecond), float64(rows)/elapsed.Seconds(), float64(bytes)/(1<<20)/elapsed.Seconds())
	gcs, live := liveHeap(logf.Name(), logStart)
	fmt.Printf("gateway (%s): RSS before %s, highest sampled RSS %s, highest sampled Go heap in use %s, peak RSS (VmHWM) %s; "+
		"%d GCs during the export, highest live heap after one %d MB\n",
		orDefault(cfg.GatewayEnv), mib(float64(rssBefore)*1024), mib(maxRSS), mib(maxHeap), mib(hwm), gcs, live)
	fmt.Printf("rewards: exported sum %s, written sum %s\n", got, want)
	switch {
	case rows != cfg.N:
		return fmt.Errorf("exported %d rows, want %d", rows, cfg.N)
	case got.String() != want.String():
		return errors.New("the rewards' sum differs")
	case hwm > cfg.LimitMiB*(1<<20):
		return fmt.Errorf("peak RSS %s is above %.0f MiB", mib(hwm), cfg.LimitMiB)
	}
	fmt.Printf("OK: peak RSS under %.0f MiB\n", cfg.LimitMiB)
	return nil
}

// exportAll reads the whole export, checking the cursors only grow, and
// returns the rows, the bytes and the rewards' sum.
func exportAll(url, format string) (int, int64, money.Decimal, error) {
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	if format == "csv" {
		req.Header.Set("Accept", "text/csv")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, 0, money.Zero, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return 0, 0, money.Zero, fmt.Errorf("export: %d %s", resp.StatusCode, b)
	}
	cr := &countingReader{r: resp.Body}
	sum := money.Zero
	rows := 0
	lastID := ""
	add := func(id, reward string) error {
		if id <= lastID {
			return fmt.Errorf("row %d: id %s after %s", rows, id, lastID)
		}
		lastID = id
		d, err := money.Parse(reward)
		if err != nil {
			return fmt.Errorf("row %d: reward %q: %w", rows, reward, err)
		}
		sum = sum.Add(d)
		rows++
		return nil
	}
	if format == "csv" {
		r := csv.NewReader(bufio.NewReaderSize(cr, 1<<16))
		r.ReuseRecord = true
		head, err := r.Read()
		if err != nil {
			return 0, 0, money.Zero, err
		}
		idCol, rewardCol := index(head, "submission_id"), index(head, "reward")
		for {
			rec, err := r.Read()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return rows, cr.n, sum, err
			}
			if rec[0] == "#error" {
				return rows, cr.n, sum, fmt.Errorf("export failed: %v", rec)
			}
			if err := add(rec[idCol], rec[rewardCol]); err != nil {
				return rows, cr.n, sum, err
			}
		}
		return rows, cr.n, sum, nil
	}
	sc := bufio.NewScanner(cr)
	sc.Buffer(make([]byte, 1<<16), 1<<20)
	var line struct {
		Submission struct {
			SubmissionID string `json:"submission_id"`
			Reward       string `json:"reward"`
		} `json:"submission"`
		Error json.RawMessage `json:"error"`
	}
	for sc.Scan() {
		line.Error = nil
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			return rows, cr.n, sum, err
		}
		if line.Error != nil {
			return rows, cr.n, sum, fmt.Errorf("export failed: %s", line.Error)
		}
		if err := add(line.Submission.SubmissionID, line.Submission.Reward); err != nil {
			return rows, cr.n, sum, err
		}
	}
	return rows, cr.n, sum, sc.Err()
}

func index(head []string, name string) int {
	for i, h := range head {
		if h == name {
			return i
		}
	}
	return -1
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// makePool registers the embedded emulator's demo account and makes an
// open pool in it.
func makePool(ctx context.Context, conn *grpc.ClientConn) (string, error) {
	cred, err := crowdgatev1.NewCredentialServiceClient(conn).CreateCredential(ctx, &crowdgatev1.CreateCredentialRequest{
		DisplayName: "bench", Environment: crowdgatev1.Environment_ENVIRONMENT_SANDBOX, ApiKey: "demo-toloka-api-key",
	})
	if err != nil {
		return "", fmt.Errorf("CreateCredential: %w", err)
	}
	prj, err := crowdgatev1.NewProjectServiceClient(conn).CreateProject(ctx, &crowdgatev1.CreateProjectRequest{Project: &crowdgatev1.Project{
		CredentialId: cred.GetCredential().GetCredentialId(), PublicName: "Export bench", PublicDescription: "Export bench",
		PlatformUrl: "https://label.example.com/start", PartnerName: "Bench", PartnerUrl: "https://label.example.com",
	}})
	if err != nil {
		return "", fmt.Errorf("CreateProject: %w", err)
	}
	p, err := crowdgatev1.NewPoolServiceClient(conn).CreatePool(ctx, &crowdgatev1.CreatePoolRequest{Pool: &crowdgatev1.Pool{
		ProjectId: prj.GetProject().GetProjectId(), PrivateName: "bench", WillExpire: timestamppb.New(time.Now().Add(30 * 24 * time.Hour)),
		RewardPerAssignment: "0.05", AssignmentMaxDurationSeconds: 600, Defaults: &crowdgatev1.PoolDefaults{DefaultOverlapForNewTaskSuites: 1},
	}})
	if err != nil {
		return "", fmt.Errorf("CreatePool: %w", err)
	}
	return p.GetPool().GetPoolId(), nil
}

func freeAddr() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func waitReady(base string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(base + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return errors.New("the gateway did not become ready")
}

// procKB reads a "<field>: N kB" line of /proc/<pid>/status.
func procKB(pid int, field string) int64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			f := strings.Fields(rest)
			if len(f) > 0 {
				n, _ := strconv.ParseInt(f[0], 10, 64)
				return n
			}
		}
	}
	return 0
}

// scrape reads one gauge from the gateway's /metrics.
func scrape(base, name string) float64 {
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<16), 1<<20)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			v, _ := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			return v
		}
	}
	return 0
}

func infoField(info, name string) string {
	for line := range strings.SplitSeq(info, "\n") {
		if rest, ok := strings.CutPrefix(line, name+":"); ok {
			return strings.TrimSpace(rest)
		}
	}
	return "?"
}

func orDefault(env string) string {
	if env == "" {
		return "its defaults"
	}
	return env
}

// liveHeap reads the gctrace lines the gateway logged from offset on: how
// many collections ran and the highest heap left live after one (the
// third number of "a->b->c MB").
func liveHeap(path string, offset int64) (int, int) {
	f, err := os.Open(path)
	if err != nil {
		return 0, 0
	}
	defer f.Close()
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return 0, 0
	}
	gcs, live := 0, 0
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<16), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "gc ") {
			continue
		}
		for field := range strings.SplitSeq(line, ", ") {
			if sizes, ok := strings.CutSuffix(field, " MB"); ok && strings.Count(sizes, "->") == 2 {
				parts := strings.Split(sizes, "->")
				if n, err := strconv.Atoi(parts[2]); err == nil {
					gcs++
					live = max(live, n)
				}
			}
		}
	}
	return gcs, live
}
