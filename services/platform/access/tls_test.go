package access

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
)

// testCA is a certificate authority for tests.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newTestCA(t *testing.T, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// issue returns PEM certificate and key for a leaf.
func (ca *testCA) issue(t *testing.T, cn string, dns []string, ips []net.IP, usage x509.ExtKeyUsage) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: cn}, DNSNames: dns, IPAddresses: ips,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
}

func writeFile(t *testing.T, dir, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestMutualTLSAuthenticatesInternalServices(t *testing.T) {
	dir := t.TempDir()
	serverCA, clientCA, rogueCA := newTestCA(t, "server CA"), newTestCA(t, "services CA"), newTestCA(t, "rogue CA")
	sc, sk := serverCA.issue(t, "crowdgate", nil, []net.IP{net.ParseIP("127.0.0.1")}, x509.ExtKeyUsageServerAuth)
	files := TLSFiles{
		Cert:     writeFile(t, dir, "server.pem", sc),
		Key:      writeFile(t, dir, "server.key", sk),
		ClientCA: writeFile(t, dir, "clients.pem", clientCA.pem),
	}
	if err := files.Validate(); err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, func(c *Config) { c.TrustClientCerts = true })
	tid := f.newTenant(t, "Acme")
	_, key := f.newKey(t, tid, write)
	creds, err := files.ServerCredentials()
	if err != nil {
		t.Fatal(err)
	}

	roots := x509.NewCertPool()
	roots.AddCert(serverCA.cert)
	client := func(ca *testCA, cn string, dns ...string) grpc.DialOption {
		cfg := &tls.Config{RootCAs: roots, ServerName: "127.0.0.1"}
		if ca != nil {
			c, k := ca.issue(t, cn, dns, nil, x509.ExtKeyUsageClientAuth)
			pair, err := tls.X509KeyPair(c, k)
			if err != nil {
				t.Fatal(err)
			}
			// Always sent, even when the server asks for another CA's.
			cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &pair, nil }
		}
		return grpc.WithTransportCredentials(credentials.NewTLS(cfg))
	}
	loopback, err := files.LoopbackCredentials()
	if err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name      string
		dial      grpc.DialOption
		ctx       context.Context
		want      codes.Code
		wantActor string
	}{
		{"service certificate, DNS name", client(clientCA, "ignored-cn", "reports.internal"), bearer("", tid), codes.OK, "service:reports.internal"},
		{"service certificate, common name", client(clientCA, "billing"), bearer("", tid), codes.OK, "service:billing"},
		{"service certificate without tenant", client(clientCA, "billing"), bearer(""), codes.PermissionDenied, ""},
		{"no certificate, no key", client(nil, ""), bearer("", tid), codes.Unauthenticated, ""},
		{"no certificate, API key", client(nil, ""), bearer(key), codes.OK, "cgk_"},
		{"certificate of another CA", client(rogueCA, "billing"), bearer("", tid), codes.Unavailable, ""},
		{"REST loopback without key", grpc.WithTransportCredentials(loopback), bearer("", tid), codes.Unauthenticated, ""},
		{"REST loopback with key", grpc.WithTransportCredentials(loopback), bearer(key), codes.OK, "cgk_"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conn := serve(t, f.svc, []grpc.ServerOption{grpc.Creds(creds)}, tc.dial)
			resp, err := crowdgatev1.NewProjectServiceClient(conn).CreateProject(tc.ctx, &crowdgatev1.CreateProjectRequest{Project: &crowdgatev1.Project{}})
			if code(err) != tc.want {
				t.Fatalf("code %v (%v), want %v", code(err), err, tc.want)
			}
			if err != nil {
				return
			}
			if resp.GetProject().GetTenantId() != tid {
				t.Errorf("acted for tenant %q, want %q", resp.GetProject().GetTenantId(), tid)
			}
			evs := listAll(t, f.access(), bearer(testAdminKey, tid))
			if got := evs[0].GetActor(); len(got) < len(tc.wantActor) || got[:len(tc.wantActor)] != tc.wantActor {
				t.Errorf("audit actor %q, want %q", got, tc.wantActor)
			}
		})
	}

	// Without TrustClientCerts, a certificate authenticates nobody.
	conn := serve(t, mustNew(t, Config{Redis: f.redis.Client, Prefix: f.redis.Prefix, Mode: ModeKeys}), []grpc.ServerOption{grpc.Creds(creds)}, client(clientCA, "billing"))
	_, err = crowdgatev1.NewProjectServiceClient(conn).CreateProject(bearer("", tid), &crowdgatev1.CreateProjectRequest{Project: &crowdgatev1.Project{}})
	if code(err) != codes.Unauthenticated {
		t.Errorf("certificate without TrustClientCerts: %v, want UNAUTHENTICATED", err)
	}

	// The loopback pins the gateway's own certificate: another server's is refused.
	other, ok := serverCA.issue(t, "other", nil, []net.IP{net.ParseIP("127.0.0.1")}, x509.ExtKeyUsageServerAuth)
	otherFiles := TLSFiles{Cert: writeFile(t, dir, "other.pem", other), Key: writeFile(t, dir, "other.key", ok)}
	otherCreds, err := otherFiles.ServerCredentials()
	if err != nil {
		t.Fatal(err)
	}
	conn = serve(t, f.svc, []grpc.ServerOption{grpc.Creds(otherCreds)}, grpc.WithTransportCredentials(loopback))
	_, err = crowdgatev1.NewProjectServiceClient(conn).CreateProject(bearer(key), &crowdgatev1.CreateProjectRequest{Project: &crowdgatev1.Project{}})
	if code(err) != codes.Unavailable {
		t.Errorf("loopback to a server with another certificate: %v, want the handshake refused", err)
	}
}

func TestTLSFilesValidate(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name  string
		files TLSFiles
	}{
		{"key without certificate", TLSFiles{Key: "x"}},
		{"client CA without server certificate", TLSFiles{ClientCA: "x"}},
		{"missing files", TLSFiles{Cert: filepath.Join(dir, "no.pem"), Key: filepath.Join(dir, "no.key")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.files.Validate(); err == nil {
				t.Error("Validate accepted it")
			}
		})
	}
	if err := (TLSFiles{}).Validate(); err != nil {
		t.Errorf("no TLS: %v", err)
	}
}

func mustNew(t *testing.T, cfg Config) *Service {
	t.Helper()
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
