package landing

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/text/feature/plural"
	"golang.org/x/text/language"
	"golang.org/x/text/message"
	"golang.org/x/text/message/catalog"

	"github.com/crowdgate/crowdgate/services/toloker/session"
)

// The pages' wording lives in messages/<language>.json, one file per
// language, embedded in the binary (messages/README.md tells translators
// the format). English is the fallback: a page is shown in the language
// of the request's Accept-Language that matches one of the files best
// (golang.org/x/text/language), in English when none matches.
//
//go:embed messages/*.json
var messageFiles embed.FS

// The keys of every page's wording: <page>.title and <page>.message.
const (
	pageMalformed      = "malformed"
	pageNotFound       = "not_found"
	pageSubmitted      = "submitted"
	pageExpired        = "expired"
	pageBanned         = "banned"
	pageClosed         = "closed"
	pageSkipped        = "skipped"
	pageEnded          = "ended"
	pageSessionExpired = "session_expired"
	pageConflict       = "conflict"
	pageRateLimited    = "rate_limited"
	pageUnavailable    = "unavailable"
)

// allPages are every page the landing shows.
var allPages = []string{pageMalformed, pageNotFound, pageSubmitted, pageExpired, pageSkipped, pageBanned,
	pageClosed, pageEnded, pageSessionExpired, pageConflict, pageRateLimited, pageUnavailable}

// fallbackLanguage is the language of a request that matches no other.
var fallbackLanguage = language.English

// messageSet is the pages' wording in every language.
type messageSet struct {
	catalog *catalog.Builder
	// tags are the languages, the fallback first (the matcher's default).
	tags    []language.Tag
	dirs    []string // "ltr" or "rtl", by tag
	matcher language.Matcher
}

// messageFile is one language's file.
type messageFile struct {
	// Language is the BCP 47 tag of the file's language ("ru"); it is the
	// pages' lang attribute.
	Language string `json:"language"`
	// Direction is "ltr" or "rtl" (the pages' dir attribute).
	Direction string `json:"direction"`
	// Messages are the texts by key: a string, or an object of CLDR plural
	// forms ("zero", "one", "two", "few", "many", "other") for a text with
	// a number, written {n}.
	Messages map[string]json.RawMessage `json:"messages"`
}

// pluralOrder is the order plural forms are tried in ("other" matches
// every number, so it comes last).
var pluralOrder = []string{"zero", "one", "two", "few", "many", "other"}

// loadMessages reads every message file of fsys (messages/*.json). A file
// that does not parse, names an unknown language or plural form, lacks
// "other" or a {n} in a plural form, or has keys that English has not, is
// an error; a key English has and a translation lacks is shown in English.
func loadMessages(fsys fs.FS) (*messageSet, error) {
	names, err := fs.Glob(fsys, "messages/*.json")
	if err != nil {
		return nil, err
	}
	files := map[language.Tag]*messageFile{}
	for _, name := range names {
		b, err := fs.ReadFile(fsys, name)
		if err != nil {
			return nil, err
		}
		var f messageFile
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&f); err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		tag, err := language.Parse(f.Language)
		if err != nil || tag.String() != strings.TrimSuffix(path.Base(name), ".json") {
			return nil, fmt.Errorf("%s: language %q is not the file's name", name, f.Language)
		}
		if f.Direction != "ltr" && f.Direction != "rtl" {
			return nil, fmt.Errorf("%s: direction %q, want ltr or rtl", name, f.Direction)
		}
		files[tag] = &f
	}
	en, ok := files[fallbackLanguage]
	if !ok {
		return nil, errors.New("messages/en.json is missing")
	}
	set := &messageSet{catalog: catalog.NewBuilder(catalog.Fallback(fallbackLanguage)), tags: []language.Tag{fallbackLanguage}}
	for tag := range files {
		if tag != fallbackLanguage {
			set.tags = append(set.tags, tag)
		}
	}
	slices.SortFunc(set.tags[1:], func(a, b language.Tag) int { return strings.Compare(a.String(), b.String()) })
	for _, tag := range set.tags {
		f := files[tag]
		set.dirs = append(set.dirs, f.Direction)
		for key := range f.Messages {
			if _, ok := en.Messages[key]; !ok {
				return nil, fmt.Errorf("messages/%s.json: key %q is not in en.json", tag, key)
			}
		}
		for key, enRaw := range en.Messages {
			raw, ok := f.Messages[key]
			if !ok {
				raw = enRaw // untranslated: English
			}
			msg, err := parseMessage(tag, raw)
			if err != nil {
				return nil, fmt.Errorf("messages/%s.json: %q: %w", tag, key, err)
			}
			if err := set.catalog.Set(tag, key, msg); err != nil {
				return nil, fmt.Errorf("messages/%s.json: %q: %w", tag, key, err)
			}
		}
	}
	set.matcher = language.NewMatcher(set.tags)
	return set, nil
}

// parseMessage turns a message file's text into a catalog message: {n}
// becomes the first argument, formatted for the language.
func parseMessage(tag language.Tag, raw json.RawMessage) (catalog.Message, error) {
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		if strings.ContainsAny(s, "{}<>") {
			return nil, errors.New("a plain text may hold no {n} and no markup")
		}
		return catalog.String(strings.ReplaceAll(s, "%", "%%")), nil
	}
	var forms map[string]string
	if err := json.Unmarshal(raw, &forms); err != nil {
		return nil, errors.New("want a string or an object of plural forms")
	}
	if _, ok := forms["other"]; !ok {
		return nil, errors.New(`plural forms without "other"`)
	}
	var cases []any
	for _, form := range pluralOrder {
		text, ok := forms[form]
		if !ok {
			continue
		}
		delete(forms, form)
		if strings.Count(text, "{n}") != 1 || strings.ContainsAny(strings.ReplaceAll(text, "{n}", ""), "{}<>") {
			return nil, fmt.Errorf("form %q must show the number once, as {n}, and no markup", form)
		}
		cases = append(cases, form, strings.ReplaceAll(strings.ReplaceAll(text, "%", "%%"), "{n}", "%[1]d"))
	}
	for form := range forms {
		return nil, fmt.Errorf("unknown plural form %q (CLDR: zero, one, two, few, many, other)", form)
	}
	m := plural.Selectf(1, "%d", cases...)
	// Selectf checks the forms against the language only when used: try it.
	if err := catalog.NewBuilder().Set(tag, "k", m); err != nil {
		return nil, err
	}
	return m, nil
}

// messages are the pages' wording, read from the embedded files at start.
var messages = func() *messageSet {
	set, err := loadMessages(messageFiles)
	if err != nil {
		panic("landing: " + err.Error())
	}
	return set
}()

// locale is the language a page is written in.
type locale struct {
	// lang and dir are the page's attributes.
	lang, dir string
	// p formats texts and numbers for the requested language (its region
	// too: ar-EG and ar-MA write their digits their own way).
	p *message.Printer
}

// localeFor picks the language of a request from its Accept-Language
// header lines (one list, however many lines carry it).
func (s *messageSet) localeFor(acceptLanguage ...string) locale {
	tag, i, conf := s.matcher.Match(acceptedTags(strings.Join(acceptLanguage, ","))...)
	if conf == language.No {
		tag, i = s.tags[0], 0
	}
	return locale{lang: s.tags[i].String(), dir: s.dirs[i], p: message.NewPrinter(tag, message.Catalog(s.catalog))}
}

// acceptedTags reads an Accept-Language list, most wanted first, leaving
// out (q=0) and skipping any entry that does not parse: one bad entry
// spoils no other.
func acceptedTags(v string) []language.Tag {
	if tags, _, err := language.ParseAcceptLanguage(v); err == nil {
		return tags
	}
	type entry struct {
		tag language.Tag
		q   float32
	}
	var es []entry
	for part := range strings.SplitSeq(v, ",") {
		if tags, qs, err := language.ParseAcceptLanguage(part); err == nil && len(tags) == 1 {
			es = append(es, entry{tags[0], qs[0]})
		}
	}
	slices.SortStableFunc(es, func(a, b entry) int { return cmp.Compare(b.q, a.q) })
	tags := make([]language.Tag, len(es))
	for i, e := range es {
		tags[i] = e.tag
	}
	return tags
}

// pageStyle is the pages' only style; the CSP allows it by its hash.
const pageStyle = `html{-webkit-text-size-adjust:100%;text-size-adjust:100%}` +
	`body{margin:0;background:#fff;color:#1f1f1f;font:1.0625rem/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"Noto Sans",sans-serif}` +
	`main{box-sizing:border-box;max-width:36rem;margin:0 auto;padding:2rem 1rem 3rem;overflow-wrap:anywhere}` +
	`h1{font-size:1.5rem;line-height:1.25;margin:0 0 1rem}` +
	`p{margin:0 0 1rem}` +
	`dl{margin:0 0 1rem;padding:.75rem 1rem;border-radius:.5rem;background:#f1f3f6}` +
	`dt{font-size:.875rem;color:#474747}` +
	`dd{margin:0;font-weight:600}` +
	`dd+dt{margin-top:.5rem}` +
	`.actions{display:flex;flex-wrap:wrap;gap:.75rem;margin-top:1.5rem}` +
	`.button{box-sizing:border-box;display:inline-block;min-height:2.75rem;padding:.625rem 1.25rem;border:2px solid #0b57d0;border-radius:.5rem;background:#fff;color:#0b57d0;font-weight:600;text-align:center;text-decoration:none}` +
	`.primary{background:#0b57d0;color:#fff}` +
	`.button:focus-visible{outline:3px solid #1f1f1f;outline-offset:2px}` +
	`@media (max-width:22.5rem){.button{flex:1 1 100%}}`

// contentSecurityPolicy allows nothing but the page's own style: no
// script, no image, no form, no frame. An automatic retry is a meta
// refresh, which needs no script.
var contentSecurityPolicy = func() string {
	sum := sha256.Sum256([]byte(pageStyle))
	return "default-src 'none'; style-src 'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) +
		"'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
}()

// pageTemplate is every page. "Try again" reloads the page's own URL (an
// empty href), so nothing of the request is written into the page.
var pageTemplate = template.Must(template.New("page").Parse(`<!doctype html>
<html lang="{{.Lang}}" dir="{{.Dir}}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
{{- if .Retry}}
<meta http-equiv="refresh" content="{{.Retry}}">
{{- end}}
<title>{{.Title}}</title>
<style>` + pageStyle + `</style>
</head>
<body>
<main>
<h1>{{.Title}}</h1>
{{- if or .PublicName .PartnerName}}
<dl>
{{- if .PublicName}}<dt>{{.TaskLabel}}</dt><dd><bdi>{{.PublicName}}</bdi></dd>{{end}}
{{- if .PartnerName}}<dt>{{.PartnerLabel}}</dt><dd><bdi>{{.PartnerName}}</bdi></dd>{{end}}
</dl>
{{- end}}
<p>{{.Message}}</p>
{{- if .Retry}}
<p id="retry-note">{{.RetryNote}}</p>
{{- end}}
<div class="actions">
{{- if .Retry}}
<a id="retry" class="button primary" href="">{{.RetryLabel}}</a>
{{- end}}
<a id="back" class="button{{if not .Retry}} primary{{end}}" href="{{.ReturnURL}}">{{.BackLabel}}</a>
</div>
</main>
</body>
</html>
`))

// pageData fills pageTemplate.
type pageData struct {
	Lang, Dir               string
	Title, Message          string
	PublicName, PartnerName string
	TaskLabel, PartnerLabel string
	Retry                   int
	RetryNote, RetryLabel   string
	ReturnURL, BackLabel    string
}

// retrySeconds rounds a wait up to whole seconds, and a wait of two
// minutes or more up to whole minutes, so that the page can say exactly
// when it retries ("in 3 minutes") and Retry-After agrees.
func retrySeconds(d time.Duration) int {
	s := int((d + time.Second - 1) / time.Second)
	if s >= 120 {
		s = (s + 59) / 60 * 60
	}
	return max(s, 1)
}

// render writes page p in loc.
func render(loc locale, p string, retry int, info session.PageInfo) []byte {
	d := pageData{
		Lang: loc.lang, Dir: loc.dir,
		Title: loc.p.Sprintf(p + ".title"), Message: loc.p.Sprintf(p + ".message"),
		PublicName: info.PublicName, PartnerName: info.PartnerName,
		TaskLabel: loc.p.Sprintf("task"), PartnerLabel: loc.p.Sprintf("partner"),
		ReturnURL: info.ReturnURL, BackLabel: loc.p.Sprintf("back"),
	}
	if retry > 0 {
		d.Retry, d.RetryLabel = retry, loc.p.Sprintf("retry")
		if retry >= 120 && retry%60 == 0 {
			d.RetryNote = loc.p.Sprintf("retry.minutes", retry/60)
		} else {
			d.RetryNote = loc.p.Sprintf("retry.seconds", retry)
		}
	}
	var buf bytes.Buffer
	if err := pageTemplate.Execute(&buf, d); err != nil {
		panic(err) // the template and its data are fixed: a test finds it
	}
	return buf.Bytes()
}

// PageInfos describes the task of an assignment on the pages, from
// Crowdgate's records; *session.Service implements it.
type PageInfos interface {
	// PageInfo returns the project's partner and public names and the
	// return URL of an assignment (the default return URL when none is
	// known, also with an error).
	PageInfo(ctx context.Context, assignmentID string) (session.PageInfo, error)
	// DefaultReturnURL is where "Back to Toloka" leads when no project is
	// known.
	DefaultReturnURL() string
}

// pageInfoTimeout bounds the look-up of a page's task: a page without the
// names is better than a slow one.
const pageInfoTimeout = time.Second

// describe returns what a page may say about the task of assignment aid.
func (h *Handler) describe(r *http.Request, aid string) session.PageInfo {
	if h.infos == nil {
		return session.PageInfo{ReturnURL: h.returnURL}
	}
	ctx, cancel := context.WithTimeout(r.Context(), pageInfoTimeout)
	defer cancel()
	info, err := h.infos.PageInfo(ctx, aid)
	if err != nil {
		h.cfg.Log.Debug("landing: the page's task could not be described", "assignment_id", aid, "err", err)
	}
	if info.ReturnURL == "" {
		info.ReturnURL = h.returnURL
	}
	return info
}

// page writes page p with status (and Retry-After, and an automatic retry
// at that time, when retry > 0), in the request's language.
func (h *Handler) page(w http.ResponseWriter, r *http.Request, outcome string, status, retry int, p string, info session.PageInfo) {
	if info.ReturnURL == "" {
		info.ReturnURL = h.returnURL
	}
	loc := messages.localeFor(r.Header.Values("Accept-Language")...)
	body := render(loc, p, retry, info)
	hdr := w.Header()
	hdr.Del("Location")
	hdr.Set("Content-Type", "text/html; charset=utf-8")
	hdr.Set("Content-Language", loc.lang)
	hdr.Set("Vary", "Accept-Language")
	hdr.Set("Content-Security-Policy", contentSecurityPolicy)
	hdr.Set("X-Content-Type-Options", "nosniff")
	hdr.Set("X-Frame-Options", "DENY")
	hdr.Set("Cache-Control", "no-store")
	hdr.Set("Referrer-Policy", "no-referrer")
	if retry > 0 {
		hdr.Set("Retry-After", strconv.Itoa(retry))
	}
	hdr.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
	h.outcomes[outcome].Inc()
}
