package credential

import "testing"

func TestFingerprint(t *testing.T) {
	// SHA-256("abc") = ba7816bf8f01cfea414140de5dae2223...
	if got := Fingerprint("abc"); got != "ba7816bf8f01cfea" {
		t.Errorf("Fingerprint(abc) = %q", got)
	}
}
