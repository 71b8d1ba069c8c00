package landing

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"golang.org/x/text/language"

	"github.com/crowdgate/crowdgate/services/toloker/session"
)

// The languages the pages must be offered in (issue 19), English first.
var wantLanguages = []string{"en", "ru", "es", "tr", "pt", "id", "ar"}

// Every message file is complete: each language has every page's title
// and message and every button's label, in its own words (no key is left
// to the English fallback), and its plural forms show the number.
func TestMessageFilesAreComplete(t *testing.T) {
	en := readMessageFile(t, "en")
	for _, p := range allPages {
		for _, k := range []string{p + ".title", p + ".message"} {
			if _, ok := en.Messages[k]; !ok {
				t.Errorf("en.json lacks %q", k)
			}
		}
	}
	for _, lang := range wantLanguages {
		f := readMessageFile(t, lang)
		wantDir := "ltr"
		if lang == "ar" {
			wantDir = "rtl"
		}
		if f.Direction != wantDir {
			t.Errorf("%s.json: direction %q, want %q", lang, f.Direction, wantDir)
		}
		for key, enRaw := range en.Messages {
			raw, ok := f.Messages[key]
			if !ok {
				t.Errorf("%s.json lacks %q", lang, key)
				continue
			}
			if lang != "en" && string(raw) == string(enRaw) && !strings.Contains(key, "retry.") {
				t.Errorf("%s.json: %q is the English text", lang, key)
			}
			if _, err := parseMessage(language.MustParse(lang), raw); err != nil {
				t.Errorf("%s.json: %q: %v", lang, key, err)
			}
		}
	}
	if _, err := loadMessages(os.DirFS(".")); err != nil {
		t.Fatalf("loading the message files: %v", err)
	}
}

func readMessageFile(t *testing.T, lang string) messageFile {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("messages", lang+".json"))
	if err != nil {
		t.Fatal(err)
	}
	var f messageFile
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatalf("%s.json: %v", lang, err)
	}
	if f.Language != lang {
		t.Errorf("%s.json names language %q", lang, f.Language)
	}
	return f
}

// A translator's mistake is refused when the files are loaded (so a test
// or the start of the binary fails), not shown to a Toloker.
func TestMessageFileMistakesAreRefused(t *testing.T) {
	en := `{"language": "en", "direction": "ltr", "messages": {"back": "Back", "retry.seconds": {"one": "in {n} second", "other": "in {n} seconds"}}}`
	for _, tc := range []struct {
		name, ru, want string
	}{
		{"a key English has not", `{"language": "ru", "direction": "ltr", "messages": {"bakc": "Назад"}}`, `"bakc" is not in en.json`},
		{"a plural form Russian has not", `{"language": "ru", "direction": "ltr", "messages": {"retry.seconds": {"two": "{n}", "other": "{n}"}}}`, `"two"`},
		{"a form without the number", `{"language": "ru", "direction": "ltr", "messages": {"retry.seconds": {"one": "секунду", "other": "{n} секунд"}}}`, "{n}"},
		{"no other form", `{"language": "ru", "direction": "ltr", "messages": {"retry.seconds": {"one": "{n}"}}}`, `"other"`},
		{"markup", `{"language": "ru", "direction": "ltr", "messages": {"back": "<b>Назад</b>"}}`, "markup"},
		{"a direction that is not one", `{"language": "ru", "direction": "right", "messages": {}}`, "direction"},
		{"a file named for another language", `{"language": "uk", "direction": "ltr", "messages": {}}`, "file's name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fsys := fstest.MapFS{
				"messages/en.json": {Data: []byte(en)},
				"messages/ru.json": {Data: []byte(tc.ru)},
			}
			_, err := loadMessages(fsys)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("loadMessages = %v, want an error about %s", err, tc.want)
			}
		})
	}
	// A key a translation lacks is shown in English.
	set, err := loadMessages(fstest.MapFS{
		"messages/en.json": {Data: []byte(en)},
		"messages/ru.json": {Data: []byte(`{"language": "ru", "direction": "ltr", "messages": {}}`)},
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := set.localeFor("ru").p.Sprintf("back"); got != "Back" {
		t.Errorf("an untranslated key in Russian = %q, want the English text", got)
	}
}

// The wait a page announces is the wait Retry-After says, in whole
// seconds, or whole minutes from two minutes on.
func TestRetrySecondsAgreeWithTheText(t *testing.T) {
	for _, tc := range []struct {
		wait string
		want int
		note string
	}{
		{"0s", 1, "in 1 second."},
		{"300ms", 1, "in 1 second."},
		{"1s", 1, "in 1 second."},
		{"4.2s", 5, "in 5 seconds."},
		{"119s", 119, "in 119 seconds."},
		{"121s", 180, "in 3 minutes."},
		{"1h", 3600, "in 60 minutes."},
	} {
		d, _ := time.ParseDuration(tc.wait)
		got := retrySeconds(d)
		if got != tc.want {
			t.Errorf("retrySeconds(%s) = %d, want %d", tc.wait, got, tc.want)
		}
		page := string(render(messages.localeFor("en"), pageUnavailable, got, session.PageInfo{ReturnURL: "https://toloka.ai/tasks"}))
		if !strings.Contains(page, tc.note) {
			t.Errorf("a wait of %s: the page does not say %q:\n%s", tc.wait, tc.note, page)
		}
	}
}
