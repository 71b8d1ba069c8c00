package access

import (
	"strings"
	"testing"
)

// TestAServiceTokenPastedWithoutItsNameIsNotShown: "Errors never
// contain a token" (ParseServiceTokens). An operator who pastes a token
// without its name (a base64 token, `openssl rand -base64 32`, ends in
// '=') must not see the token in the one log line that stops the gateway.
func TestAServiceTokenPastedWithoutItsNameIsNotShown(t *testing.T) {
	for _, tok := range []string{
		"c2VjcmV0dG9rZW4xMjM0NTY3ODkwYWJjZGVmZ2hpams=", // base64, no name
		"q8Zx+3Kd/7PmWv0aBn4Lr2Ts9Yh1Ue6Gc5Jf3Ni8Ok0=", // base64 with + and /
	} {
		_, err := ParseServiceTokens("billing=" + pastedLongToken + "\n" + tok)
		if err == nil {
			t.Errorf("%q accepted", tok)
			continue
		}
		body := strings.TrimRight(tok, "=")
		if strings.Contains(err.Error(), body[:16]) {
			t.Errorf("the error of an entry that is a bare token shows the token: %v", err)
		}
	}
}

const pastedLongToken = "0123456789abcdef0123456789abcdef"
