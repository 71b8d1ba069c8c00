package access

import (
	"fmt"
	"os"
	"strings"
)

// ParseServiceTokens reads internal service tokens: "name=token" pairs
// separated by commas or new lines, or "@/path/to/file" holding such pairs
// (blank lines and lines starting with # are skipped). Names are 1 to 64
// letters, digits, '.', '_' or '-'; tokens are at least MinSecretLength
// characters; each name and each token appears once. Errors never contain a
// token.
func ParseServiceTokens(s string) (map[string]string, error) {
	if path, ok := strings.CutPrefix(strings.TrimSpace(s), "@"); ok {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("read service tokens file: %w", err)
		}
		s = string(b)
	}
	out := map[string]string{}
	seen := map[string]bool{}
	for i, entry := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == '\n' }) {
		entry = strings.TrimSpace(entry)
		if entry == "" || strings.HasPrefix(entry, "#") {
			continue
		}
		name, token, ok := strings.Cut(entry, "=")
		name, token = strings.TrimSpace(name), strings.TrimSpace(token)
		if !ok {
			return nil, fmt.Errorf("service token entry %d: want name=token", i+1)
		}
		if err := checkServiceName(name); err != nil {
			return nil, fmt.Errorf("service token entry %d: %w", i+1, err)
		}
		// Entries are named by their place, never by their name: a token
		// pasted without its name ("openssl rand -base64 32" ends in '=')
		// reads as a name.
		if len(token) < MinSecretLength {
			return nil, fmt.Errorf("service token entry %d: the token must be at least %d characters (openssl rand -hex 32)", i+1, MinSecretLength)
		}
		if _, dup := out[name]; dup {
			return nil, fmt.Errorf("service token entry %d: its name is another entry's", i+1)
		}
		if seen[token] {
			return nil, fmt.Errorf("service token entry %d: its token is also another service's", i+1)
		}
		out[name], seen[token] = token, true
	}
	return out, nil
}

// checkServiceName accepts 1 to 64 letters, digits, '.', '_' or '-'.
func checkServiceName(name string) error {
	if name == "" || len(name) > 64 {
		return fmt.Errorf("the service name must be 1 to 64 characters, got %d", len(name))
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return fmt.Errorf("the service name may hold only letters, digits, '.', '_' and '-'")
		}
	}
	return nil
}
