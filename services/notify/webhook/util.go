package webhook

import (
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"

	"github.com/redis/go-redis/v9"

	"github.com/crowdgate/crowdgate/services/kernel/serviceerror"
	"github.com/crowdgate/crowdgate/services/platform/storage"
)

func redisZ(member string) redis.Z { return redis.Z{Member: member} }

func unavailable(err error) error { return storage.Unavailable(err) }

func isNotFound(err error) bool {
	var nf *serviceerror.NotFound
	return errors.As(err, &nf)
}

func isTLSError(err error) bool {
	var rec tls.RecordHeaderError
	var cv *tls.CertificateVerificationError
	var ae tls.AlertError
	return errors.As(err, &rec) || errors.As(err, &cv) || errors.As(err, &ae)
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic("webhook: crypto/rand failed: " + err.Error())
	}
	return hex.EncodeToString(b)
}
