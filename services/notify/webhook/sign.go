package webhook

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"strconv"
	"strings"
)

// SecretPrefix starts every signing secret, as the Standard Webhooks
// specification writes them.
const SecretPrefix = "whsec_"

// secretBytes is the size of a new secret's key.
const secretBytes = 32

// newSecret returns a new signing secret: "whsec_" and base64 of 32 random
// bytes.
func newSecret() string {
	b := make([]byte, secretBytes)
	if _, err := rand.Read(b); err != nil {
		panic("webhook: crypto/rand failed: " + err.Error())
	}
	return SecretPrefix + base64.StdEncoding.EncodeToString(b)
}

// secretKey is the HMAC key of a secret: the base64-decoded part after
// "whsec_".
func secretKey(secret string) ([]byte, error) {
	rest, ok := strings.CutPrefix(secret, SecretPrefix)
	if !ok {
		return nil, errors.New("webhook: not a whsec_ secret")
	}
	key, err := base64.StdEncoding.DecodeString(rest)
	if err != nil || len(key) == 0 {
		return nil, errors.New("webhook: malformed secret")
	}
	return key, nil
}

// signature is the webhook-signature header for a message signed with
// every one of keys: "v1,<base64 HMAC-SHA256 of id.timestamp.body>", one
// per key, separated by spaces.
func signature(id string, unix int64, body []byte, keys ...[]byte) string {
	var sb strings.Builder
	ts := strconv.FormatInt(unix, 10)
	for i, k := range keys {
		mac := hmac.New(sha256.New, k)
		mac.Write([]byte(id))
		mac.Write([]byte{'.'})
		mac.Write([]byte(ts))
		mac.Write([]byte{'.'})
		mac.Write(body)
		if i > 0 {
			sb.WriteByte(' ')
		}
		sb.WriteString("v1,")
		sb.WriteString(base64.StdEncoding.EncodeToString(mac.Sum(nil)))
	}
	return sb.String()
}
