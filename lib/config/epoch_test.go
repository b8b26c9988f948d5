package config

import (
	"strings"
	"testing"
	"time"
)

func TestDefaultBuildVersionFollowsSourceDateEpoch(t *testing.T) {
	now := time.Date(2031, 5, 6, 7, 8, 9, 0, time.FixedZone("UTC+5", 5*3600))
	for _, tc := range []struct {
		name, epoch, want, err string
	}{
		{name: "unset is now, in UTC", epoch: "", want: "310506-020809"},
		{name: "the epoch itself", epoch: "0", want: "700101-000000"},
		{name: "a 2023 date", epoch: "1700000000", want: "231114-221320"},
		{name: "leading zeros are digits too", epoch: "0001700000000", want: "231114-221320"},
		{name: "last second of 9999", epoch: "253402300799", want: "991231-235959"},
		{name: "year 10000", epoch: "253402300800", err: "after the year 9999"},
		{name: "overflows int64", epoch: "99999999999999999999", err: "after the year 9999"},
		{name: "negative", epoch: "-1", err: "not a number of seconds"},
		{name: "plus sign", epoch: "+1700000000", err: "not a number of seconds"},
		{name: "fraction", epoch: "1700000000.5", err: "not a number of seconds"},
		{name: "trailing newline", epoch: "1700000000\n", err: "not a number of seconds"},
		{name: "a date, not seconds", epoch: "2023-11-14", err: "not a number of seconds"},
		{name: "space", epoch: " ", err: "not a number of seconds"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := DefaultBuildVersion(tc.epoch, now)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) || !strings.Contains(err.Error(), "SOURCE_DATE_EPOCH=") {
					t.Fatalf("DefaultBuildVersion(%q) = %q, %v; want an error naming SOURCE_DATE_EPOCH with %q", tc.epoch, got, err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("DefaultBuildVersion(%q) = %q, %v; want %q", tc.epoch, got, err, tc.want)
			}
		})
	}
}

func TestLoadTakesBuildVersionFromSourceDateEpoch(t *testing.T) {
	for _, tc := range []struct {
		name    string
		epoch   string
		given   string // Options.BuildVersion
		file    string // config/defaults.ini
		want    string // [build] build_version; "" = now
		wantErr string
	}{
		{name: "SOURCE_DATE_EPOCH", epoch: "1700000000", want: "231114-221320"},
		{name: "the caller's wins", epoch: "1700000000", given: "200101-000000", want: "200101-000000"},
		{name: "a config file's wins", epoch: "1700000000", file: "[build]\nbuild_version = custom\n", want: "custom"},
		{name: "empty is unset", epoch: "", want: ""},
		{name: "invalid is a config error", epoch: "yesterday", wantErr: "[build] build_version: SOURCE_DATE_EPOCH=\"yesterday\": not a number of seconds"},
		{name: "invalid even when the caller gives one", epoch: "1.5", given: "200101-000000", wantErr: "SOURCE_DATE_EPOCH=\"1.5\""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(SourceDateEpochVar, tc.epoch)
			src := tree(t, map[string]string{"config/defaults.ini": tc.file})
			o := opts(src)
			o.BuildVersion = tc.given
			before := time.Now().UTC()
			l, err := Load(o)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Load: %v, want an error containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			got := get(t, l.Full, "build", "build_version")
			if tc.want != "" {
				if got != tc.want {
					t.Errorf("[build] build_version = %q, want %q", got, tc.want)
				}
				return
			}
			at, err := time.Parse(BuildVersionLayout, got)
			if err != nil || at.Before(before.Truncate(time.Second)) || at.After(time.Now().UTC()) {
				t.Errorf("[build] build_version = %q (%v), want the current UTC time %s", got, err, before.Format(BuildVersionLayout))
			}
		})
	}
}
