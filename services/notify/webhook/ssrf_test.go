package webhook

import (
	"context"
	"net/http"
	"net/netip"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
	"github.com/crowdgate/crowdgate/services/notify/events"
)

// resolver of the SSRF tests: internal.example resolves to 10.0.0.1,
// rebind.example to a public and a private address, hooks.example to a
// public one.
var ssrfResolver = fakeResolver{
	"internal.example": {"10.0.0.1"},
	"rebind.example":   {"93.184.216.34", "127.0.0.1"},
	"meta.example":     {"fd00:ec2::254"},
	"hooks.example":    {"93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946"},
}

func TestCreateRefusesPrivateAddressesUnlessAllowed(t *testing.T) {
	for _, tc := range []struct {
		url     string
		refused bool // without AllowPrivate
		allowed bool // with AllowPrivate
	}{
		{"https://127.0.0.1/hook", true, true},
		{"https://169.254.169.254/latest/meta-data/", true, true},
		{"https://internal.example/hook", true, true},
		{"https://rebind.example/hook", true, true},
		{"https://meta.example/hook", true, true},
		{"https://localhost:8443/hook", true, true},
		{"https://[::1]/hook", true, true},
		{"https://[::ffff:127.0.0.1]/hook", true, true},
		{"https://[64:ff9b::a00:1]/hook", true, true},
		{"https://100.64.0.1/hook", true, true},
		{"https://0.0.0.0/hook", true, true},
		{"https://192.168.1.1/hook", true, true},
		{"https://[fe80::1]/hook", true, true},
		{"http://hooks.example/hook", true, true}, // http: only with AllowPrivate
		{"https://unknown.example/hook", true, true},
		{"https://user:pass@hooks.example/hook", true, false},
		{"ftp://hooks.example/hook", true, false},
		{"https:///nohost", true, false},
		{"https://hooks.example:0/hook", true, false},
		{"https://hooks.example:65536/hook", true, false},
		{"https://hooks.example:99999/hook", true, false},
		{"https://hooks.example:65535/hook", false, true},
		{"https://[2002:a9fe:a9fe::1]/hook", true, true},
		{"https://hooks.example/hook", false, true},
		{"https://93.184.216.34/hook", false, true},
	} {
		for _, allow := range []bool{false, true} {
			f := newFixture(t, func(c *Config) { c.Settings.AllowPrivate = allow; c.Resolver = ssrfResolver })
			_, err := f.svc.CreateWebhookEndpoint(f.ctx, &crowdgatev1.CreateWebhookEndpointRequest{Url: tc.url})
			wantRefused := tc.refused
			if allow {
				wantRefused = !tc.allowed
			}
			if wantRefused {
				if fieldOf(err) != "url" {
					t.Errorf("%s (allow private %v): %v, want INVALID_ARGUMENT naming url", tc.url, allow, err)
				}
			} else if err != nil {
				t.Errorf("%s (allow private %v): %v", tc.url, allow, err)
			}
		}
	}
}

func TestBlocked(t *testing.T) {
	for addr, want := range map[string]bool{
		"127.0.0.1": true, "127.8.8.8": true, "::1": true, "169.254.169.254": true, "fe80::1": true,
		"10.0.0.1": true, "172.16.0.1": true, "172.31.255.255": true, "192.168.0.1": true, "fc00::1": true, "fd00:ec2::254": true,
		"0.0.0.0": true, "::": true, "100.64.0.1": true, "100.100.100.200": true, "::ffff:10.0.0.1": true, "64:ff9b::7f00:1": true,
		"224.0.0.1": true, "255.255.255.255": true,
		// Azure's host address (WireServer), 6to4's relay, and IPv6 forms
		// that carry a blocked IPv4 address: 6to4, IPv4-translated
		// (SIIT), and Teredo (its addresses are obfuscated: all refused).
		"168.63.129.16": true, "192.88.99.1": true,
		"2002:a9fe:a9fe::1": true, "2002:7f00:1::1": true, "2002:a00:1::1": true, "::ffff:0:7f00:1": true, "::ffff:0:a9fe:a9fe": true,
		"2001:0:4136:e378:8000:63bf:3fff:fdd2": true,
		"2002:5db8:d822::1":                    false, "::ffff:0:5db8:d822": false,
		"93.184.216.34": false, "8.8.8.8": false, "172.32.0.1": false, "100.128.0.1": false, "2606:4700::1111": false,
	} {
		if got := Blocked(netip.MustParseAddr(addr)); got != want {
			t.Errorf("Blocked(%s) = %v, want %v", addr, got, want)
		}
	}
}

func TestTheDialerRefusesPrivateAddressesAtDeliveryTime(t *testing.T) {
	g := guard{resolver: ssrfResolver}
	for _, addr := range []string{"127.0.0.1:443", "169.254.169.254:80", "10.0.0.1:443", "[::1]:443", "[fd00:ec2::254]:80"} {
		if err := g.control("tcp", addr, nil); err != errBlockedAddress {
			t.Errorf("control(%s) = %v, want refused", addr, err)
		}
	}
	if err := g.control("tcp", "93.184.216.34:443", nil); err != nil {
		t.Errorf("control(public) = %v", err)
	}
	if err := (guard{allowPrivate: true}).control("tcp", "127.0.0.1:443", nil); err != nil {
		t.Errorf("control with AllowPrivate = %v", err)
	}
	// A real request to a loopback server never connects.
	rcv := newReceiver(t)
	req, _ := http.NewRequestWithContext(context.Background(), http.MethodPost, rcv.srv.URL, nil)
	if _, err := newClient(g, testSettings().AttemptTimeout, 4).Do(req); err == nil || errorText(err) != errBlockedAddress.Error() {
		t.Errorf("request to 127.0.0.1: %v", err)
	}
	if rcv.count() != 0 {
		t.Errorf("the loopback server was reached")
	}
}

// An endpoint accepted while its name resolved to a public address, whose
// name now resolves to a private one (DNS rebinding), is refused when the
// delivery connects: the attempt records why, and the server is never
// reached.
func TestADeliveryToAnAddressThatBecamePrivateIsRefused(t *testing.T) {
	f := newFixture(t, nil) // AllowPrivate: the endpoint on 127.0.0.1 is accepted
	rcv := newReceiver(t)
	ep, _ := f.create(f.ctx, rcv.srv.URL)
	strict := f.newService(func(c *Config) { c.Settings.AllowPrivate = false })
	f.run(strict)
	f.event(events.TypePoolOpened, "pools/p-1")
	f.waitFor("the refused attempt", func() bool {
		ds := f.deliveries(ep.EndpointId)
		return len(ds) == 1 && len(ds[0].Attempts) >= 1
	})
	a := f.deliveries(ep.EndpointId)[0].Attempts[0]
	if a.Error != errBlockedAddress.Error() || a.HttpStatus != 0 {
		t.Errorf("attempt %v, want refused by the guard", a)
	}
	if strings.Contains(a.Error, "127.0.0.1") {
		t.Errorf("the attempt's error names the address: %q", a.Error)
	}
	if rcv.count() != 0 {
		t.Errorf("the private endpoint was reached %d times", rcv.count())
	}
	_ = codes.OK
}

// TestCreateDoesNotTellUnknownNamesFromPrivateOnes: the refusal of a name
// that does not resolve reads as the refusal of one that resolves to a
// private address, so creating endpoints cannot map the names the
// gateway's own DNS knows.
func TestCreateDoesNotTellUnknownNamesFromPrivateOnes(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.Settings.AllowPrivate = false; c.Resolver = ssrfResolver })
	message := func(host string) string {
		_, err := f.svc.CreateWebhookEndpoint(f.ctx, &crowdgatev1.CreateWebhookEndpointRequest{Url: "https://" + host + "/hook"})
		if fieldOf(err) != "url" {
			t.Fatalf("%s: %v, want INVALID_ARGUMENT naming url", host, err)
		}
		return strings.ReplaceAll(err.Error(), host, "HOST")
	}
	if unknown, private := message("unknown.example"), message("internal.example"); unknown != private {
		t.Errorf("an unknown name is refused with %q, a private one with %q; want the same", unknown, private)
	}
}
