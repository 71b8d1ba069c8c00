package access

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"

	"google.golang.org/grpc/credentials"
)

// TLSFiles names the PEM files of the gRPC server's TLS and, optionally,
// of the CA that signs internal services' client certificates (mutual TLS).
//
// Client certificates are verified when given, not required: partner
// programs call the same port with API keys, and the gateway's own REST
// connection presents none (so a REST caller can never borrow a service's
// identity). A call that presents neither a verified certificate nor a
// valid bearer credential is refused by Service.Unary.
type TLSFiles struct {
	// Cert and Key are the server's certificate chain and private key.
	Cert, Key string
	// ClientCA, when set, is the CA bundle whose client certificates
	// authenticate internal services (Config.TrustClientCerts).
	ClientCA string
}

// Enabled reports whether the gRPC server should use TLS.
func (f TLSFiles) Enabled() bool { return f.Cert != "" || f.Key != "" || f.ClientCA != "" }

// Validate checks that the files are given together and can be loaded.
func (f TLSFiles) Validate() error {
	if !f.Enabled() {
		return nil
	}
	_, err := f.ServerConfig()
	return err
}

// ServerConfig is the gRPC server's TLS configuration.
func (f TLSFiles) ServerConfig() (*tls.Config, error) {
	if f.Cert == "" || f.Key == "" {
		return nil, errors.New("TLS needs both a certificate and a key file")
	}
	cert, err := tls.LoadX509KeyPair(f.Cert, f.Key)
	if err != nil {
		return nil, fmt.Errorf("load TLS certificate: %w", err)
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if f.ClientCA != "" {
		pem, err := os.ReadFile(f.ClientCA)
		if err != nil {
			return nil, fmt.Errorf("read client CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("client CA %s: no PEM certificate in it", f.ClientCA)
		}
		cfg.ClientCAs = pool
		cfg.ClientAuth = tls.VerifyClientCertIfGiven
	}
	return cfg, nil
}

// ServerCredentials are the gRPC server's transport credentials
// (grpc.Creds(...)).
func (f TLSFiles) ServerCredentials() (credentials.TransportCredentials, error) {
	cfg, err := f.ServerConfig()
	if err != nil {
		return nil, err
	}
	return credentials.NewTLS(cfg), nil
}

// LoopbackCredentials are for the gateway's own REST-to-gRPC connection:
// TLS that accepts exactly the server's own certificate (pinned, so no CA
// or host name is involved) and presents no client certificate.
func (f TLSFiles) LoopbackCredentials() (credentials.TransportCredentials, error) {
	cert, err := tls.LoadX509KeyPair(f.Cert, f.Key)
	if err != nil {
		return nil, fmt.Errorf("load TLS certificate: %w", err)
	}
	own := cert.Certificate[0]
	return credentials.NewTLS(&tls.Config{
		MinVersion: tls.VersionTLS12,
		// Verification is the pin below, not the CA chain.
		InsecureSkipVerify: true,
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			if len(raw) == 0 || !bytes.Equal(raw[0], own) {
				return errors.New("loopback: the gRPC server did not present the gateway's own certificate")
			}
			return nil
		},
	}), nil
}
