// Package paging is the one reading of page_size and page_token for every
// List RPC, and the one writing of next_page_token.
//
// A page token is opaque to clients: base64url of a checksum and the cursor
// (the last key of the previous page). The checksum binds the cursor to the
// list it came from, so a token that was made up, cut short or taken from
// another list (another project's pools, another pool's submissions) is
// INVALID_ARGUMENT naming page_token, never a silent first page. The cursor
// is not secret: a caller who forges one only moves within lists it may read
// anyway.
package paging

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"

	"github.com/crowdgate/crowdgate/services/kernel/serviceerror"
)

// Page sizes.
const (
	// DefaultSize is the size of a page when page_size is 0.
	DefaultSize = 50
	// MaxSize is the largest page_size accepted.
	MaxSize = 500
	// MaxCursorLength bounds a cursor (a key of the list).
	MaxCursorLength = 512
)

const sumLen = 6

// Page is a validated page request of one list.
type Page struct {
	// Size is how many items to return (1..MaxSize).
	Size int
	// After is the cursor the page starts after; empty for the first page.
	After string

	list string
}

// Parse validates a request's page_size and page_token for list, a name
// that identifies the list ("credentials", "pools/prj_123"). Errors are
// INVALID_ARGUMENT naming the field.
func Parse(list string, size int32, token string) (Page, error) {
	if size < 0 || size > MaxSize {
		return Page{}, serviceerror.NewInvalidArgument("page_size", "must be between 0 and %d, got %d", MaxSize, size)
	}
	p := Page{Size: int(size), list: list}
	if p.Size == 0 {
		p.Size = DefaultSize
	}
	if token == "" {
		return p, nil
	}
	after, ok := decode(list, token)
	if !ok {
		return Page{}, serviceerror.NewInvalidArgument("page_token", "is not a next_page_token of this list: pass back the token a previous page returned, unchanged")
	}
	p.After = after
	return p, nil
}

// First is the first page of list with the default size, for callers that
// walk a whole list themselves.
func First(list string, size int) Page {
	return Page{Size: min(max(size, 1), MaxSize), list: list}
}

// Next returns the page after cursor in the same list.
func (p Page) Next(cursor string) Page {
	return Page{Size: p.Size, After: cursor, list: p.list}
}

// Token returns the next_page_token that continues the list after cursor.
// An empty cursor (the last page) gives an empty token.
func (p Page) Token(cursor string) string {
	if cursor == "" {
		return ""
	}
	sum := checksum(p.list, cursor)
	b := make([]byte, 0, sumLen+len(cursor))
	b = append(b, sum[:]...)
	b = append(b, cursor...)
	return base64.RawURLEncoding.EncodeToString(b)
}

func decode(list, token string) (string, bool) {
	if len(token) > base64.RawURLEncoding.EncodedLen(sumLen+MaxCursorLength) {
		return "", false
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(token)
	if err != nil || len(b) <= sumLen {
		return "", false
	}
	cursor := string(b[sumLen:])
	want := checksum(list, cursor)
	if subtle.ConstantTimeCompare(want[:], b[:sumLen]) != 1 {
		return "", false
	}
	return cursor, true
}

func checksum(list, cursor string) [sumLen]byte {
	h := sha256.New()
	h.Write([]byte("crowdgate page token v1\x00"))
	h.Write([]byte(list))
	h.Write([]byte{0})
	h.Write([]byte(cursor))
	var out [sumLen]byte
	copy(out[:], h.Sum(nil))
	return out
}
