package gateway

import (
	"os"
	"strings"
	"testing"
)

// TestREADMEDocumentsEverySetting keeps the README's configuration table
// true: every setting's environment variable and flag must appear in it.
func TestREADMEDocumentsEverySetting(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range Settings() {
		for _, want := range []string{"`" + s.Env + "`", "`-" + s.Flag + "`"} {
			if !strings.Contains(string(readme), want) {
				t.Errorf("README.md does not document %s", want)
			}
		}
	}
}
