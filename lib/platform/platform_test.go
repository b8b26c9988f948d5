package platform

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// The schema's [build] arch_values is the table's arch list: a new arch
// added to one and not the other fails here.
func TestSchemaArchValuesAreTheTablesArches(t *testing.T) {
	data, err := os.ReadFile("../../config/schema.ini")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?ms)^\[build\]$.*?^arch_values = (.*?)$`).FindSubmatch(data)
	if m == nil {
		t.Fatal("config/schema.ini has no [build] arch_values")
	}
	if got, want := strings.Fields(string(m[1])), Arches(); !slices.Equal(got, want) {
		t.Errorf("config/schema.ini [build] arch_values = %s; the platform table's arches are %s: write arch_values = %s",
			m[1], strings.Join(want, " "), strings.Join(want, " "))
	}
}

// config/defaults.ini documents --arch's values; every arch has its
// config/arch file and every board its config/platform file (where its
// partition table and boot check settings are).
func TestConfigTreeNamesEveryEntry(t *testing.T) {
	data, err := os.ReadFile("../../config/defaults.ini")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^#\s+arch\s+--arch: (.*?) \(default`).FindSubmatch(data)
	arches := Arches()
	want := strings.Join(arches[:len(arches)-1], ", ") + " or " + arches[len(arches)-1]
	if m == nil || string(m[1]) != want {
		t.Errorf("config/defaults.ini documents --arch as %q, want %q", m, want)
	}
	for _, p := range All() {
		dir := "platform"
		if p.Generic() {
			dir = "arch"
		}
		f := filepath.Join("../../config", dir, p.Name+".ini")
		if _, err := os.Stat(f); err != nil && (p.Generic() || p.Labels[0] != GPT) {
			// A board that boots from eib's default gpt needs no file.
			t.Errorf("%s: %v", p.Name, err)
		}
	}
}

// Each entry is complete: a Debian arch of the table's, a root type, a
// boot loader with what it needs, partitions for every label it boots
// from, and either QEMU firmwares or the reason it has none.
func TestEveryEntryIsComplete(t *testing.T) {
	seen := map[string]bool{}
	for _, p := range All() {
		if seen[p.Name] {
			t.Errorf("%s: two entries", p.Name)
		}
		seen[p.Name] = true
		if _, ok := ForArch(p.Arch); !ok {
			t.Errorf("%s: arch %q has no generic entry", p.Name, p.Arch)
		}
		if p.RootType == "" || p.Ext4Features == "" || len(p.Labels) == 0 || p.Description == "" {
			t.Errorf("%s: root type %q, ext4 features %q, labels %v, description %q: all are needed",
				p.Name, p.RootType, p.Ext4Features, p.Labels, p.Description)
		}
		if len(p.Labels) == 1 && p.LabelNote == "" {
			t.Errorf("%s: boots only from %s but LabelNote does not say why", p.Name, p.Labels[0])
		}
		if len(p.QEMU) == 0 && p.QEMUNote == "" {
			t.Errorf("%s: no QEMU firmware and no QEMUNote saying why", p.Name)
		}
		boots := []Boot{p.Boot}
		if p.SDBoot != nil {
			boots = append(boots, *p.SDBoot)
		}
		for _, b := range boots {
			switch b.Loader {
			case BootGRUB:
				if len(b.GRUB) == 0 {
					t.Errorf("%s: GRUB without targets", p.Name)
				}
				for _, g := range b.GRUB {
					if g.Source.Dir == "" || g.Source.Check == "" || g.Source.Package == "" || (g.Firmware == UEFI) != (g.EFIPath != "") {
						t.Errorf("%s: GRUB target %+v is incomplete", p.Name, g)
					}
				}
			case BootSDBoot:
				if b.SDBoot.Check == "" || b.EFIPath == "" {
					t.Errorf("%s: systemd-boot without its source or EFI path", p.Name)
				}
			case BootUBoot:
				if len(b.Blobs) == 0 {
					t.Errorf("%s: u-boot without blobs", p.Name)
				}
			case BootNone:
			default:
				t.Errorf("%s: unknown boot loader %q", p.Name, b.Loader)
			}
			for _, l := range p.Labels {
				for _, part := range b.Partitions[l] {
					if part.Role == RoleFirmware && b.FirmwareDir == "" {
						t.Errorf("%s: a firmware partition but no FirmwareDir", p.Name)
					}
				}
			}
		}
	}
}

// Find names what is supported when it refuses.
func TestFindNamesWhatIsSupported(t *testing.T) {
	if _, err := Find("sparc", "sun4u"); err == nil || !strings.Contains(err.Error(), "amd64, arm64, i386") {
		t.Errorf("Find(sparc) = %v", err)
	}
	if _, err := Find("arm64", "rpi4"); err == nil || !strings.Contains(err.Error(), "arm64, pinebookpro, rpi") {
		t.Errorf("Find(arm64, rpi4) = %v", err)
	}
	if p, err := Find("amd64", ""); err != nil || p.Name != "amd64" {
		t.Errorf("Find(amd64, \"\") = %+v, %v", p, err)
	}
}

// A caller cannot change the table through what it is given.
func TestEntriesAreCopies(t *testing.T) {
	p, _ := ForArch("amd64")
	p.Boot.Partitions[GPT][0].Size = 1
	p.Boot.Firmware[0] = "x"
	q, _ := ForArch("amd64")
	if q.Boot.Partitions[GPT][0].Size == 1 || q.Boot.Firmware[0] == "x" {
		t.Error("changing an entry changed the table")
	}
}
