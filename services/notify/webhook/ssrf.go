package webhook

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"github.com/crowdgate/crowdgate/services/kernel/serviceerror"
)

// Resolver resolves a host name (*net.Resolver implements it).
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// errBlockedAddress is a connection refused by the guard. Its text is what
// an attempt records: it names no address.
var errBlockedAddress = errors.New("address not allowed (loopback, link-local, private or metadata)")

// blockedPrefixes are the ranges an endpoint may not reach unless
// AllowPrivate: loopback, link-local (cloud metadata services live there:
// 169.254.169.254, fe80::), private (RFC 1918, fc00::/7 ULA, which holds
// fd00:ec2::254), CGNAT (100.64.0.0/10, Alibaba's metadata
// 100.100.100.200), Azure's host address 168.63.129.16, "this network",
// benchmarking, reserved, multicast and broadcast, 6to4's relay anycast,
// Teredo (2001::/32: its addresses carry an obfuscated IPv4 address, and
// the mechanism is obsolete), and the IPv6 forms that embed or translate
// to those (embedded below).
var blockedPrefixes = func() []netip.Prefix {
	var out []netip.Prefix
	for _, s := range []string{
		"0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "168.63.129.16/32", "169.254.0.0/16", "172.16.0.0/12",
		"192.0.0.0/24", "192.0.2.0/24", "192.88.99.0/24", "192.168.0.0/16", "198.18.0.0/15", "198.51.100.0/24", "203.0.113.0/24",
		"224.0.0.0/4", "240.0.0.0/4",
		"::/128", "::1/128", "::/96", "64:ff9b:1::/48", "100::/64", "2001::/32", "2001:db8::/32", "fc00::/7", "fe80::/10", "fec0::/10", "ff00::/8",
	} {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}()

// embedded are the IPv6 prefixes that carry an IPv4 address, checked as
// such, and where it starts: NAT64's well-known prefix and IPv4-translated
// addresses (SIIT) in their last 32 bits, 6to4 in the 32 bits after 2002:.
var embedded = []struct {
	prefix netip.Prefix
	at     int
}{
	{netip.MustParsePrefix("64:ff9b::/96"), 12},
	{netip.MustParsePrefix("::ffff:0:0:0/96"), 12},
	{netip.MustParsePrefix("2002::/16"), 2},
}

// Blocked reports whether ip is an address an endpoint may not reach
// (unless AllowPrivate).
func Blocked(ip netip.Addr) bool {
	ip = ip.Unmap()
	if !ip.IsValid() || ip.IsUnspecified() || ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast() ||
		ip.IsLinkLocalMulticast() || ip.IsInterfaceLocalMulticast() || ip.IsMulticast() {
		return true
	}
	if ip.Is6() {
		for _, e := range embedded {
			if e.prefix.Contains(ip) {
				b := ip.As16()
				if Blocked(netip.AddrFrom4([4]byte(b[e.at : e.at+4]))) {
					return true
				}
			}
		}
	}
	for _, p := range blockedPrefixes {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// guard checks endpoint URLs when they are given and every address a
// delivery connects to.
type guard struct {
	allowPrivate bool
	resolver     Resolver
}

// maxURLLength bounds an endpoint URL.
const maxURLLength = 2048

// checkURL validates an endpoint URL: https (http only with AllowPrivate),
// a host, no user information (it would be a secret in the URL), and,
// unless AllowPrivate, a host that resolves only to allowed addresses.
// Errors are INVALID_ARGUMENT naming field.
func (g guard) checkURL(ctx context.Context, field, raw string) error {
	if raw == "" {
		return serviceerror.NewInvalidArgument(field, "is required")
	}
	if len(raw) > maxURLLength {
		return serviceerror.NewInvalidArgument(field, "must be at most %d bytes", maxURLLength)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return serviceerror.NewInvalidArgument(field, "is not a URL")
	}
	switch {
	case u.Scheme == "https":
	case u.Scheme == "http" && g.allowPrivate:
	default:
		return serviceerror.NewInvalidArgument(field, "must be an https URL")
	}
	if u.User != nil {
		return serviceerror.NewInvalidArgument(field, "must not carry a user name or password")
	}
	if u.Fragment != "" || u.Opaque != "" {
		return serviceerror.NewInvalidArgument(field, "must be an absolute URL without a fragment")
	}
	host := u.Hostname()
	if host == "" {
		return serviceerror.NewInvalidArgument(field, "must name a host")
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 || strings.Trim(p, "0123456789") != "" {
			return serviceerror.NewInvalidArgument(field, "has an invalid port (1 to 65535)")
		}
	}
	if g.allowPrivate {
		return nil
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		if Blocked(ip) {
			return serviceerror.NewInvalidArgument(field, "must not be a loopback, link-local, private or metadata address")
		}
		return nil
	}
	if strings.EqualFold(host, "localhost") || strings.HasSuffix(strings.ToLower(host), ".localhost") {
		return serviceerror.NewInvalidArgument(field, "must not be a loopback, link-local, private or metadata address")
	}
	// One refusal for a name that does not resolve and for one that
	// resolves to a blocked address: two would let a caller map the names
	// the gateway's DNS knows (internal services among them).
	ips, err := g.resolver.LookupNetIP(ctx, "ip", host)
	if err != nil || len(ips) == 0 || slices.ContainsFunc(ips, Blocked) {
		return serviceerror.NewInvalidArgument(field, "host %q must resolve, and only to public addresses (not loopback, link-local, private or metadata)", host)
	}
	return nil
}

// control is the dialer's Control: it sees the address actually dialled
// (after DNS), so a name that resolves elsewhere at delivery time (DNS
// rebinding) is refused all the same.
func (g guard) control(network, address string, _ syscall.RawConn) error {
	if g.allowPrivate {
		return nil
	}
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return errBlockedAddress
	}
	if Blocked(ap.Addr()) {
		return errBlockedAddress
	}
	return nil
}

// dialer returns a dialer whose every connection passes the guard.
func (g guard) dialer() *net.Dialer {
	return &net.Dialer{Control: g.control}
}
