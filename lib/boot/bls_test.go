package boot

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSerialConsoleFromKargs(t *testing.T) {
	for _, row := range []struct {
		kargs string
		want  Serial
		ok    bool
	}{
		{"quiet console=ttyS0,115200n8", Serial{0, 115200}, true},
		{"console=tty0 console=ttyS1,9600", Serial{1, 9600}, true},
		{"console=ttyS2", Serial{2, 115200}, true},
		{"console=tty0 quiet", Serial{}, false},
		{"console=ttyUSB0", Serial{}, false},
	} {
		got, ok := SerialConsole(row.kargs)
		if ok != row.ok || got != row.want {
			t.Errorf("SerialConsole(%q) = %+v, %v; want %+v, %v", row.kargs, got, ok, row.want, row.ok)
		}
	}
}

func TestEntriesNewestFirstByNumericVersion(t *testing.T) {
	dir := t.TempDir()
	entries := filepath.Join(dir, "boot", "loader", "entries")
	if err := os.MkdirAll(entries, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{"2", "10", "1"} {
		body := "title OS " + v + "\nversion " + v + "\noptions a=1\noptions b=2\nlinux /ostree/os-x/vmlinuz\ninitrd /ostree/os-x/initrd\n"
		if err := os.WriteFile(filepath.Join(entries, "ostree-"+v+"-os.conf"), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := ReadEntries(dir)
	if err != nil {
		t.Fatal(err)
	}
	var order []string
	for _, e := range got {
		order = append(order, e.Version)
	}
	if strings.Join(order, " ") != "10 2 1" {
		t.Errorf("order %v, want 10 2 1", order)
	}
	if got[0].Options != "a=1 b=2" {
		t.Errorf("options %q, want both options lines joined", got[0].Options)
	}
	cfg := GrubConfig(got, "quiet", 3)
	if strings.Contains(cfg, "serial") {
		t.Errorf("serial lines without a serial console:\n%s", cfg)
	}
	if !strings.Contains(cfg, "set timeout=3") || strings.Index(cfg, "'OS 10'") > strings.Index(cfg, "'OS 2'") {
		t.Errorf("grub.cfg:\n%s", cfg)
	}
}

func TestNoEntriesIsAnErrorNamingTheDirectory(t *testing.T) {
	dir := t.TempDir()
	_, err := ReadEntries(dir)
	if err == nil || !strings.Contains(err.Error(), filepath.Join(dir, "boot", "loader", "entries")) {
		t.Errorf("error %v does not name the entries directory", err)
	}
}
