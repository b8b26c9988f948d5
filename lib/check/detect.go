package check

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
)

// Partition types that tell how a PC disk boots (UEFI specification 2.10,
// 5.3.3, for the ESP; GRUB's BIOS boot partition; the MBR type 0xef).
const (
	gptESP      = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
	gptBIOSBoot = "21686148-6449-6E6F-744E-656564454649"
	mbrESP      = "ef"
)

// DetectFirmwares reads the partition table of a raw disk image (sfdisk
// --json) and returns the firmware interfaces it can boot with: "uefi"
// when it has an EFI system partition, "bios" when it has a GPT BIOS boot
// partition or, on a dos label, boot code in its MBR. An error means no
// partition table with partitions was found: the caller then cannot tell.
func DetectFirmwares(ctx context.Context, raw string) ([]string, error) {
	cmd := exec.CommandContext(ctx, "sfdisk", "--json", raw)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("%s: no partition table (sfdisk --json: %v: %s)", raw, err, strings.TrimSpace(stderr.String()))
	}
	var t struct {
		Table struct {
			Label      string `json:"label"`
			Partitions []struct {
				Type string `json:"type"`
			} `json:"partitions"`
		} `json:"partitiontable"`
	}
	if err := json.Unmarshal(out, &t); err != nil {
		return nil, fmt.Errorf("%s: reading sfdisk --json: %w", raw, err)
	}
	if len(t.Table.Partitions) == 0 {
		// A file system on the whole disk (a FAT "superfloppy" reads as an
		// empty dos label): nothing to tell from.
		return nil, fmt.Errorf("%s: no partitions in its %s partition table", raw, t.Table.Label)
	}
	var bios, uefi bool
	for _, p := range t.Table.Partitions {
		switch strings.ToUpper(p.Type) {
		case gptESP, strings.ToUpper(mbrESP):
			uefi = true
		case gptBIOSBoot:
			bios = true
		}
	}
	if t.Table.Label == "dos" {
		code, err := mbrBootCode(raw)
		if err != nil {
			return nil, err
		}
		bios = code
	}
	var fws []string
	if bios {
		fws = append(fws, "bios")
	}
	if uefi {
		fws = append(fws, "uefi")
	}
	return fws, nil
}

// mbrBootCode reports whether the first 440 bytes of the disk (the MBR's
// boot code area) hold anything.
func mbrBootCode(raw string) (bool, error) {
	f, err := os.Open(raw)
	if err != nil {
		return false, err
	}
	defer f.Close()
	b := make([]byte, 440)
	if _, err := io.ReadFull(f, b); err != nil {
		return false, fmt.Errorf("%s: reading the MBR: %w", raw, err)
	}
	return !bytes.Equal(b, make([]byte, 440)), nil
}
