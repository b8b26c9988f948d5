package config

import (
	"fmt"
	"strconv"
	"time"
)

// SourceDateEpochVar is the environment variable of the reproducible-builds.org
// specification (https://reproducible-builds.org/specs/source-date-epoch/):
// the time, in seconds since 1970-01-01 00:00:00 UTC, that a build uses
// instead of the current time.
const SourceDateEpochVar = "SOURCE_DATE_EPOCH"

// BuildVersionLayout is the layout of [build] build_version: EIB's
// %y%m%d-%H%M%S, in UTC.
const BuildVersionLayout = "060102-150405"

// maxEpoch is the first second of the year 10000: later times have no
// four-digit year, and %y of build_version would be ambiguous long before.
const maxEpoch = 253402300800

// SourceDateEpoch parses the value of SOURCE_DATE_EPOCH. An empty value
// means "not set" (ok false), as the specification allows. Otherwise the
// value must be what `date +%s` prints: decimal digits only (no sign,
// space or fraction), seconds since 1970-01-01 00:00:00 UTC, before the
// year 10000; anything else is an error that names the variable.
func SourceDateEpoch(v string) (t time.Time, ok bool, err error) {
	if v == "" {
		return time.Time{}, false, nil
	}
	bad := func(why string) error {
		return fmt.Errorf("%s=%q: %s (the reproducible-builds.org SOURCE_DATE_EPOCH: a whole number of seconds since 1970-01-01 00:00:00 UTC, as `date +%%s` prints; unset it or leave it empty for the current time)", SourceDateEpochVar, v, why)
	}
	for _, r := range v {
		if r < '0' || r > '9' {
			return time.Time{}, false, bad("not a number of seconds")
		}
	}
	secs, err := strconv.ParseInt(v, 10, 64)
	if err != nil || secs >= maxEpoch {
		return time.Time{}, false, bad("after the year 9999")
	}
	return time.Unix(secs, 0).UTC(), true, nil
}

// DefaultBuildVersion is [build] build_version when the caller gives none:
// the time of SOURCE_DATE_EPOCH (sourceDateEpoch, the variable's value)
// when it is set and not empty, so that two builds with the same
// SOURCE_DATE_EPOCH get the same outversion, and now otherwise; both in
// UTC, as BuildVersionLayout.
func DefaultBuildVersion(sourceDateEpoch string, now time.Time) (string, error) {
	t, ok, err := SourceDateEpoch(sourceDateEpoch)
	if err != nil {
		return "", err
	}
	if !ok {
		t = now
	}
	return t.UTC().Format(BuildVersionLayout), nil
}
