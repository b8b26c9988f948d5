package ostree

import (
	"errors"
	"testing"
)

// TestRetryableOnlyWhatCanChange classifies ostree's own messages
// (2022.7, libcurl back end, as `ostree pull` prints them).
func TestRetryableOnlyWhatCanChange(t *testing.T) {
	for msg, want := range map[string]bool{
		"While fetching http://127.0.0.1:1/summary.sig: [7] Couldn't connect to server": true,
		"Server returned HTTP 503":                                  true,
		"Server returned HTTP 500":                                  true,
		"Server returned status 502: Bad Gateway":                   true,
		"Server returned HTTP 429":                                  true,
		"While fetching https://x/config: [28] Timeout was reached": true,
		"[56] Failure when receiving data from the peer":            true,
		"[6] Couldn't resolve host name":                            true,
		"Server returned HTTP 404":                                  false,
		"Server returned HTTP 403":                                  false,
		"Writing content object: Corrupted file object; checksum expected='" + zeros + "' actual='" + zeros + "'": false,
		"GPG verification enabled, but no signatures found (use gpg-verify=false in remote config to disable)":    false,
		"Commit 1234: GPG signatures found, but none are in trusted keyring":                                      false,
		"No such branch 'eibtest/amd64/nope' in repository summary":                                               false,
		"URI http://x/objects/bc/y.commit exceeded maximum size of 118 bytes":                                     false,
		"something ostree never said": false,
	} {
		if got := retryable(&Error{Args: []string{"pull"}, Stderr: msg, Err: errors.New("exit status 1")}); got != want {
			t.Errorf("retryable(%q) = %v, want %v", msg, got, want)
		}
	}
	if retryable(errors.New("not an ostree error")) {
		t.Error("a non-ostree error is retryable")
	}
}

const zeros = "0000000000000000000000000000000000000000000000000000000000000000"
