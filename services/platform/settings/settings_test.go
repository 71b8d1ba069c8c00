package settings

import (
	"flag"
	"io"
	"strings"
	"testing"
	"time"
)

type example struct {
	Name    string
	Wait    time.Duration
	Workers int
	Key     string
}

func (e *example) List() []Setting {
	return []Setting{
		{"name", "EX_NAME", "crowdgate", "a name", String(&e.Name)},
		{"wait", "EX_WAIT", "2s", "a wait", Duration(&e.Wait)},
		{"workers", "EX_WORKERS", "4", "workers", Int(&e.Workers)},
		{"key", "EX_KEY", "", "a secret", Secret(&e.Key)},
	}
}

func TestEnvironmentSetsDefaultsAndFlagsWin(t *testing.T) {
	var e example
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	env := map[string]string{"EX_WAIT": "5s", "EX_KEY": "hunter2", "EX_WORKERS": "8"}
	if err := Register(fs, func(k string) string { return env[k] }, e.List()); err != nil {
		t.Fatal(err)
	}
	if err := fs.Parse([]string{"-workers=16"}); err != nil {
		t.Fatal(err)
	}
	want := example{Name: "crowdgate", Wait: 5 * time.Second, Workers: 16, Key: "hunter2"}
	if e != want {
		t.Errorf("settings = %+v, want %+v", e, want)
	}
	var usage strings.Builder
	fs.SetOutput(&usage)
	fs.PrintDefaults()
	if strings.Contains(usage.String(), "hunter2") {
		t.Errorf("-h shows a secret:\n%s", usage.String())
	}
}

func TestBadValuesNameTheirVariable(t *testing.T) {
	var e example
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	err := Register(fs, func(k string) string { return map[string]string{"EX_WAIT": "soon", "EX_WORKERS": "-1"}[k] }, e.List())
	for _, want := range []string{"EX_WAIT", "EX_WORKERS"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Register error = %v, want one naming %s", err, want)
		}
	}
}

func TestDefaults(t *testing.T) {
	var e example
	Defaults(e.List())
	if e.Name != "crowdgate" || e.Wait != 2*time.Second || e.Workers != 4 {
		t.Errorf("Defaults gave %+v", e)
	}
}
