package check

import (
	"fmt"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
)

func TestConsoleFindsMarkerSplitAcrossChunks(t *testing.T) {
	c := newConsole(regexp.MustCompile(`EIB-DEMO-BOOT-OK`))
	if c.write([]byte("\x1b[1;1Hbooting...\r\nEIB-DE")) {
		t.Fatal("marker reported before it was printed")
	}
	if !c.write([]byte("MO-BOOT-OK\r\n")) {
		t.Fatal("marker split across two reads not found")
	}
	if got := c.lastLines(); !reflect.DeepEqual(got, []string{"booting...", "EIB-DEMO-BOOT-OK"}) {
		t.Fatalf("lines = %q", got)
	}
}

func TestConsoleMarkerWithoutNewlineIsFound(t *testing.T) {
	c := newConsole(regexp.MustCompile(`login: $`))
	if !c.write([]byte("\r\ndemo login: ")) {
		t.Fatal("a prompt without newline is not matched")
	}
}

func TestConsoleTailKeepsLastThirtyLinesOldestFirst(t *testing.T) {
	c := newConsole(regexp.MustCompile(`never`))
	for i := 1; i <= 45; i++ {
		c.write([]byte(fmt.Sprintf("line %d\n", i)))
	}
	c.write([]byte("partial"))
	got := c.lastLines()
	if len(got) != tailLines || got[0] != "line 17" || got[28] != "line 45" || got[29] != "partial" {
		t.Fatalf("tail = %q", got)
	}
}

func TestConsoleStripsColourCodes(t *testing.T) {
	if got := cleanLine([]byte("\x1b[0m\x1b[30m\x1b[47mWelcome to GRUB!\r")); got != "Welcome to GRUB!" {
		t.Fatalf("cleanLine = %q", got)
	}
}

func TestFirmwaresPerArchitecture(t *testing.T) {
	for _, tc := range []struct {
		arch, setting string
		want          []Firmware
		err           bool
	}{
		{"amd64", "both", []Firmware{BIOS, UEFI}, false},
		{"amd64", "bios", []Firmware{BIOS}, false},
		{"amd64", " uefi ", []Firmware{UEFI}, false},
		{"amd64", "efi", nil, true},
		{"arm64", "both", []Firmware{AArch64UEFI}, false},
		{"arm64", "uefi", []Firmware{AArch64UEFI}, false},
		{"arm64", "bios", nil, true},
		{"i386", "both", []Firmware{BIOS}, false},
		{"i386", "uefi", nil, true},
		{"riscv64", "both", nil, true},
	} {
		got, err := Firmwares(tc.arch, tc.setting)
		if (err != nil) != tc.err || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("Firmwares(%q, %q) = %v, %v; want %v, error %v", tc.arch, tc.setting, got, err, tc.want, tc.err)
		}
	}
}

func TestQEMUPathDoublesCommas(t *testing.T) {
	m := machine{args: []string{"-m", "256"}}
	got := m.command("/tmp/a,b/vars.fd", "/tmp/a,b/disk.qcow2", "qcow2")
	want := []string{"-m", "256",
		"-drive", "if=pflash,format=raw,unit=1,file=/tmp/a,,b/vars.fd",
		"-drive", "file=/tmp/a,,b/disk.qcow2,format=qcow2,if=virtio"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("command = %q", got)
	}
}

func TestDefaultMarkerIsTheOneOfDefaultsINI(t *testing.T) {
	data, err := os.ReadFile("../../config/defaults.ini")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?ms)^\[check\].*?^boot_marker = (.*?)$`).FindSubmatch(data)
	if m == nil || string(m[1]) != DefaultMarker {
		t.Fatalf("config/defaults.ini [check] boot_marker = %q, check.DefaultMarker = %q", m, DefaultMarker)
	}
	re := regexp.MustCompile(DefaultMarker)
	for _, line := range []string{"EIB-DEMO-BOOT-OK", "demo login: ", "[  OK  ] Reached target multi-user.target - Multi-User System."} {
		if !re.MatchString(line) {
			t.Errorf("default marker does not match %q", line)
		}
	}
}

// The firmware an image's boot loader supports decides what "both" boots;
// an explicit firmware the image cannot boot with is refused.
func TestFirmwaresFollowTheBootLoader(t *testing.T) {
	for _, tc := range []struct {
		arch, setting string
		bootable      []string
		want          []Firmware
		err           string
	}{
		{"amd64", "both", []string{"bios", "uefi"}, []Firmware{BIOS, UEFI}, ""},
		{"amd64", "both", []string{"uefi"}, []Firmware{UEFI}, ""}, // systemd-boot
		{"amd64", "uefi", []string{"uefi"}, []Firmware{UEFI}, ""},
		{"amd64", "bios", []string{"uefi"}, nil, `firmware "bios": the image boots only with uefi`},
		{"i386", "both", []string{"bios", "uefi"}, []Firmware{BIOS}, ""},
		{"arm64", "both", []string{"uefi"}, []Firmware{AArch64UEFI}, ""},
		{"arm64", "both", nil, nil, ""}, // pinebookpro, rpi: skipped
		{"arm64", "uefi", nil, nil, "board's own firmware"},
	} {
		got, err := FirmwaresFor(tc.arch, tc.setting, tc.bootable)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("FirmwaresFor(%s, %s, %v): error %v, want one containing %q", tc.arch, tc.setting, tc.bootable, err, tc.err)
			}
			continue
		}
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("FirmwaresFor(%s, %s, %v) = %v, %v; want %v", tc.arch, tc.setting, tc.bootable, got, err, tc.want)
		}
	}
}
