package crowdload

import (
	"bytes"
	"context"
	"io"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestParseLandingFlagsAccounts(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want int
	}{
		{nil, 1},
		{[]string{"--accounts=1"}, 1},
		{[]string{"--accounts", "8"}, 8},
		{[]string{"--accounts=256"}, 256},
		{[]string{"--accounts=3", "--assignments=3"}, 3},
	} {
		c, err := ParseLandingFlags(tc.args, io.Discard)
		if err != nil {
			t.Errorf("ParseLandingFlags(%q): %v", tc.args, err)
			continue
		}
		if c.Accounts != tc.want {
			t.Errorf("ParseLandingFlags(%q).Accounts = %d, want %d", tc.args, c.Accounts, tc.want)
		}
	}
	var help bytes.Buffer
	if _, err := ParseLandingFlags([]string{"--help"}, &help); err == nil || !strings.Contains(help.String(), "-accounts") {
		t.Errorf("--help: %v, and it does not list --accounts:\n%s", err, help.String())
	}
}

func TestAccountOf(t *testing.T) {
	// Consecutive assignments go to different accounts, and every account
	// gets its share.
	counts := make([]int, 3)
	for i := range 10 {
		counts[accountOf(i, 3)]++
	}
	if diff := cmp.Diff([]int{4, 3, 3}, counts); diff != "" {
		t.Errorf("assignments per account (-want +got):\n%s", diff)
	}
	if accountOf(7, 1) != 0 {
		t.Errorf("one account: assignment 7 in account %d", accountOf(7, 1))
	}
}

// INFO commandstats as Redis 7.0 prints it.
const commandStats = `# Commandstats
cmdstat_evalsha:calls=300,usec=9000,usec_per_call=30.00,rejected_calls=0,failed_calls=0
cmdstat_get:calls=1000,usec=700,usec_per_call=0.70,rejected_calls=0,failed_calls=0
cmdstat_client|setname:calls=2,usec=3,usec_per_call=1.50,rejected_calls=0,failed_calls=0
cmdstat_hgetall:calls=5,usec=10,usec_per_call=2.00,rejected_calls=0,failed_calls=0
`

func TestRedisCommandStats(t *testing.T) {
	after, err := parseCommandStats(commandStats)
	if err != nil {
		t.Fatal(err)
	}
	want := RedisCommandStats{
		"evalsha": {Calls: 300, Usec: 9000}, "get": {Calls: 1000, Usec: 700},
		"client|setname": {Calls: 2, Usec: 3}, "hgetall": {Calls: 5, Usec: 10},
	}
	if diff := cmp.Diff(want, after); diff != "" {
		t.Fatalf("parseCommandStats (-want +got):\n%s", diff)
	}
	before := RedisCommandStats{"evalsha": {Calls: 100, Usec: 3000}, "get": {Calls: 800, Usec: 500}, "hgetall": {Calls: 5, Usec: 10}}
	d := after.Sub(before)
	if diff := cmp.Diff(RedisCommandStats{"evalsha": {200, 6000}, "get": {200, 200}, "client|setname": {2, 3}}, d); diff != "" {
		t.Errorf("Sub (-want +got):\n%s", diff)
	}
	if d.Calls() != 402 || d.Scripts() != 200 {
		t.Errorf("Calls %d, Scripts %d; want 402, 200", d.Calls(), d.Scripts())
	}
	if got, want := d.PerOp(100), "evalsha 2.00 (60.0us), get 2.00 (2.0us), client|setname 0.02 (0.0us)"; got != want {
		t.Errorf("PerOp = %q, want %q", got, want)
	}
	if got := d.PerOp(0); got != "none" {
		t.Errorf("PerOp(0) = %q", got)
	}
	if _, err := parseCommandStats("cmdstat_get:calls=x,usec=1\n"); err == nil {
		t.Error("parseCommandStats accepted calls=x")
	}
}

func TestWriteLandingSummaryAccounts(t *testing.T) {
	r := &LandingResult{
		Config: LandingConfig{Connections: 32, Duration: 10 * time.Second, Assignments: 4000, Accounts: 2},
		CPUs:   2,
		Cold: PhaseResult{Name: "cold landings (first of each assignment)", Requests: 4000, Elapsed: 5 * time.Second,
			CPU: map[string]time.Duration{"gateway": 6 * time.Second, "redis": 2 * time.Second}},
		Emulator:  PhaseResult{Requests: 6000, Elapsed: 10 * time.Second},
		Accounts:  []*LandingAccount{{Assignments: 2000, ColdLandings: 2000}, {Assignments: 2000, ColdLandings: 2000}},
		ColdRedis: RedisCommandStats{"evalsha": {Calls: 8000, Usec: 1_000_000}},
	}
	var b bytes.Buffer
	r.WriteSummary(&b)
	out := b.String()
	for _, want := range []string{
		"crowdload landing: 32 connections, 10s phases, 4000 assignments, 2 CPUs, 2 Toloka accounts\n",
		"cold landings: 800/s = 133% of the emulator's GET /assignments/{id}; target >= 80%: met\n",
		"cold landings CPU: 800/s over 2 accounts; gateway 1.50ms, Redis 0.50ms of CPU each; issue 21 targets <= 0.40ms and <= 0.15ms: NOT met\n",
		"cold landings per account's pool: 2000 2000\n",
		"Redis per cold landing: 2.00 script calls, 2.00 commands (a script's commands counted too); time executing, by command (a script's includes its commands'): evalsha 2.00 (250.0us)\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("summary lacks %q:\n%s", want, out)
		}
	}
}

// A short landing run against the real binaries with two Toloka accounts:
// the assignments are spread over both accounts' pools, and each pool got
// all of its cold landings, as crowdload counted the redirects and as the
// gateway's Toloker registry lists them.
func TestLandingManyAccounts(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and starts the gateway, the emulator and Redis")
	}
	if _, err := exec.LookPath("wrk"); err != nil {
		t.Skip("wrk is not installed (Debian: apt-get install wrk)")
	}
	cfg, err := ParseLandingFlags([]string{
		"--accounts=2", "--assignments=24", "--duration=1s", "--connections=4",
		// A second of warm landings on 24 assignments from 24 addresses.
		"--gateway-env=CROWDGATE_LANDING_LIMIT_ASSIGNMENT=100000/s,burst=100000,CROWDGATE_LANDING_LIMIT_IP=100000/s,burst=100000",
	}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	cfg.RedisServer = redisServerBin(t)
	cfg.Crowdgate = binary(t, "crowdgate")
	cfg.Tolokasim = binary(t, "tolokasim")
	cfg.WorkDir = t.TempDir()
	var progress bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res, err := RunLanding(ctx, cfg, &progress)
	if err != nil {
		t.Fatalf("RunLanding: %v\n%s", err, progress.String())
	}
	if len(res.Accounts) != 2 {
		t.Fatalf("%d accounts, want 2", len(res.Accounts))
	}
	a, b := res.Accounts[0], res.Accounts[1]
	if a.Key == b.Key || a.Account == b.Account || a.PoolID == b.PoolID || a.TolokaPoolID == b.TolokaPoolID {
		t.Errorf("the accounts share a key, name or pool: %+v, %+v", a, b)
	}
	for i, acc := range res.Accounts {
		if acc.Assignments != 12 || acc.ColdLandings != 12 || acc.Tolokers != 12 {
			t.Errorf("account %d: %d assignments, %d cold landings, %d Tolokers in the registry; want 12 each", i, acc.Assignments, acc.ColdLandings, acc.Tolokers)
		}
	}
	if res.Cold.Requests != 24 || res.Cold.Other != 0 {
		t.Errorf("cold phase: %d redirects and %d other answers, want 24 and 0", res.Cold.Requests, res.Cold.Other)
	}
	if res.ColdRedis.Scripts() < 24 {
		t.Errorf("Redis ran %d scripts over 24 cold landings, want at least one each: %v", res.ColdRedis.Scripts(), res.ColdRedis)
	}
	var out bytes.Buffer
	res.WriteSummary(&out)
	for _, want := range []string{"2 Toloka accounts", "cold landings CPU: ", "over 2 accounts", "cold landings per account's pool: 12 12\n", "Redis per cold landing: "} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("summary lacks %q:\n%s", want, out.String())
		}
	}
}
