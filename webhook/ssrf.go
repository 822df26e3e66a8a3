package webhook

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/creditledger/creditledger/fault"
	"github.com/creditledger/creditledger/internal/text"
)

// A webhook URL is chosen by whoever holds an admin key, and the server
// then POSTs to it from inside the network: without a guard, an endpoint
// could reach the cloud metadata service, the database or an internal admin
// panel (server-side request forgery). The guard refuses such targets twice:
// when the endpoint is created (a clear 422 for the operator) and when each
// connection is dialed, on the address actually dialed, because a name that
// resolved to a public address at creation may resolve to 127.0.0.1 later
// (DNS rebinding).

// maxURLLen bounds an endpoint URL; browsers and proxies stop around here.
const maxURLLen = 2048

// BlockedError is a refusal to connect to an internal address, found as a
// connection is dialed. It keeps the address and the reason for the
// delivery log; as a fault it is Invalid on "url": the endpoint's URL
// leads somewhere it must not, and sending again will not change that.
type BlockedError struct {
	Addr   netip.Addr
	Reason string // "loopback", "private", ...
}

func (e *BlockedError) Error() string {
	return fmt.Sprintf("refused to connect to %s: %s address", e.Addr, e.Reason)
}

// Fault is the refusal in the service's vocabulary of errors.
func (e *BlockedError) Fault() *fault.Error {
	return &fault.Error{Kind: fault.Invalid, Field: "url", Detail: fmt.Sprintf("leads to %s, a %s address", e.Addr, e.Reason)}
}

// CheckURL validates an endpoint URL: http or https, a host, no user name
// or password and, unless allowPrivate, a host that is not and does not
// resolve to an internal address. Its errors are fault.Invalid on field
// "url".
func CheckURL(ctx context.Context, raw string, allowPrivate bool) (*url.URL, error) {
	bad := func(format string, args ...any) (*url.URL, error) { return nil, fault.Invalidf("url", format, args...) }
	switch {
	case raw == "":
		return bad("is required")
	case len(raw) > maxURLLen:
		return bad("is longer than %d characters", maxURLLen)
	}
	// url.Parse refuses control characters but keeps invalid UTF-8 in a
	// query as it is, which PostgreSQL would then refuse to store.
	var te *text.Error
	if errors.As(text.Check("url", raw, maxURLLen), &te) {
		return bad("%s", te.Detail)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return bad("is not a valid URL")
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return bad("must be an http or https URL")
	case u.Opaque != "" || u.Host == "" || u.Hostname() == "":
		return bad("must have a host")
	case u.User != nil:
		// Credentials in the URL would be sent in clear in every delivery
		// log and header; receivers verify the signature instead.
		return bad("must not contain a user name or password")
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return bad("has an invalid port")
		}
	}
	if allowPrivate {
		return u, nil
	}
	host := strings.TrimSuffix(strings.ToLower(u.Hostname()), ".")
	if a, err := netip.ParseAddr(host); err == nil {
		if a.Zone() != "" {
			return bad("must not name a network interface")
		}
		if r := blockedReason(a); r != "" {
			return bad("must not point to a %s address", r)
		}
		return u, nil
	}
	// A host whose last label is a number is an IPv4 address in a
	// shorthand ("127.1", "2130706433", "0x7f.1") that resolvers and
	// browsers read differently; only the dotted quad is accepted.
	labels := strings.Split(host, ".")
	if last := labels[len(labels)-1]; last == "" || strings.Trim(last, "0123456789") == "" || strings.HasPrefix(last, "0x") {
		return bad("must be a host name or an IP address in canonical form")
	}
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return bad("must not point to a loopback address")
	}
	lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	addrs, err := net.DefaultResolver.LookupNetIP(lctx, "ip", host)
	var dnsErr *net.DNSError
	switch {
	case errors.As(err, &dnsErr) && dnsErr.IsNotFound:
		return bad("host %s does not resolve", host)
	case err != nil:
		// A DNS hiccup is not the operator's fault: accept, and let the
		// check at dial time decide.
		return u, nil
	}
	for _, a := range addrs {
		if r := blockedReason(a); r != "" {
			return bad("host %s resolves to %s, a %s address", host, a.Unmap(), r)
		}
	}
	return u, nil
}

// Ranges Go's netip predicates do not cover. Values, not variables: nothing
// here can be changed at run time.
func reservedReason(a netip.Addr) string {
	for _, r := range []struct {
		prefix string
		reason string
	}{
		{"0.0.0.0/8", "unspecified"},
		{"100.64.0.0/10", "carrier-grade NAT"},
		{"192.0.0.0/24", "IETF protocol"},
		{"198.18.0.0/15", "benchmarking"},
		{"240.0.0.0/4", "reserved"}, // broadcast included
		{"::/96", "IPv4-compatible"},
		{"100::/64", "discard-only"},
		{"64:ff9b:1::/48", "private"},
		{"2001::/32", "Teredo tunnel"},
		{"fec0::/10", "site-local"},
	} {
		if netip.MustParsePrefix(r.prefix).Contains(a) {
			return r.reason
		}
	}
	return ""
}

// blockedReason says why a is an internal address, or "" if it is not.
func blockedReason(a netip.Addr) string {
	a = a.WithZone("").Unmap()
	switch {
	case a == netip.AddrFrom4([4]byte{169, 254, 169, 254}) || a == netip.MustParseAddr("fd00:ec2::254"):
		return "cloud metadata"
	case a.IsLoopback():
		return "loopback"
	case a.IsUnspecified():
		return "unspecified"
	case a.IsLinkLocalUnicast():
		return "link-local"
	case a.IsMulticast():
		return "multicast"
	case a.IsPrivate():
		return "private"
	}
	if r := reservedReason(a); r != "" {
		return r
	}
	// IPv6 prefixes that carry an IPv4 address are judged by it: NAT64
	// (64:ff9b::/96) and 6to4 (2002::/16).
	if a.Is6() {
		b := a.As16()
		switch {
		case netip.MustParsePrefix("64:ff9b::/96").Contains(a):
			return blockedReason(netip.AddrFrom4([4]byte(b[12:16])))
		case netip.MustParsePrefix("2002::/16").Contains(a):
			return blockedReason(netip.AddrFrom4([4]byte(b[2:6])))
		}
	}
	return ""
}

// guard makes the HTTP client deliveries are sent with.
type guard struct {
	allowPrivate bool
}

// control runs after the address is resolved and before the connection is
// made: the one place that sees the address actually dialed.
func (g *guard) control(network, address string, _ syscall.RawConn) error {
	if g.allowPrivate {
		return nil
	}
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("refused to connect to %q: not an IP address", address)
	}
	if r := blockedReason(ap.Addr()); r != "" {
		return &BlockedError{Addr: ap.Addr().WithZone("").Unmap(), Reason: r}
	}
	return nil
}

// client is an HTTP client that checks every address it dials, ignores
// proxy settings (a proxy would be dialed instead of the target, and the
// check would see only the proxy) and does not follow redirects (a 3xx is
// an answer, and not a 2xx: the attempt failed).
func (g *guard) client() *http.Client {
	dialer := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second, Control: g.control}
	return &http.Client{
		Transport: &http.Transport{
			Proxy:                 nil,
			DialContext:           dialer.DialContext,
			ForceAttemptHTTP2:     true,
			MaxIdleConns:          100,
			MaxIdleConnsPerHost:   2,
			IdleConnTimeout:       90 * time.Second,
			TLSHandshakeTimeout:   10 * time.Second,
			ExpectContinueTimeout: time.Second,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}
