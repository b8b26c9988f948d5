package check

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"strings"
	"syscall"

	"github.com/eib-builder/eib/lib/config"
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

// Format is what an image file given to the boot check holds, told by its
// first bytes (never by its name).
type Format string

const (
	FormatRaw   Format = "raw"   // a disk with an MBR or GPT partition table
	FormatQCOW2 Format = "qcow2" // QEMU copy-on-write, version any ("QFI\xfb")
	FormatGzip  Format = "gz"    // gzip (1f 8b) of a raw disk
	FormatXz    Format = "xz"    // xz (fd 37 7a 58 5a 00) of a raw disk
	FormatZstd  Format = "zst"   // zstd (28 b5 2f fd) of a raw disk
)

// Compressed reports whether f is one of the compressions eib writes.
func (f Format) Compressed() bool { return f == FormatGzip || f == FormatXz || f == FormatZstd }

// InputError is an image the boot check refuses before starting anything:
// a missing path, something that is not a regular file, or a file whose
// content is neither a partitioned raw disk, nor qcow2, nor gz/xz/zst of a
// partitioned raw disk. eib check-image exits 1 on it (a usage error).
type InputError struct {
	Path   string // the path as given
	Reason string // what it is, e.g. "not a disk image: a directory"
}

func (e *InputError) Error() string { return e.Path + ": " + e.Reason }

// notDisk is the reason of every refused content.
const notDisk = "not a disk image: no MBR or GPT partition table, and not gz/xz/zst/qcow2"

// headSize is how much of a file (or of its decompressed data) is read to
// tell what it is: up to the ISO 9660 volume descriptor at 32 KiB + 1
// (ECMA-119, 8.4), which covers the GPT header at 512 or 4096.
const headSize = 0x8006

// magic returns the Format f's first bytes say, "" for none of them.
func magic(head []byte) Format {
	switch {
	case bytes.HasPrefix(head, []byte("QFI\xfb")):
		return FormatQCOW2
	case bytes.HasPrefix(head, []byte{0x1f, 0x8b}):
		return FormatGzip
	case bytes.HasPrefix(head, []byte{0xfd, '7', 'z', 'X', 'Z', 0x00}):
		return FormatXz
	case bytes.HasPrefix(head, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		return FormatZstd
	}
	return ""
}

// hasPartitionTable reports whether head starts a disk with a partition
// table: the MBR signature 55 aa at byte 510, or a GPT header ("EFI PART",
// UEFI 2.10, 5.3.2) in LBA 1 of a disk with 512- or 4096-byte sectors.
func hasPartitionTable(head []byte) bool {
	at := func(off int, sig string) bool {
		return len(head) >= off+len(sig) && string(head[off:off+len(sig)]) == sig
	}
	return at(510, "\x55\xaa") || at(512, "EFI PART") || at(4096, "EFI PART")
}

// describe says what a head that is no disk image holds, when it can
// tell ("" otherwise).
func describe(head []byte) string {
	at := func(off int, sig string) bool {
		return len(head) >= off+len(sig) && string(head[off:off+len(sig)]) == sig
	}
	switch {
	case at(0, "BZh"):
		return "it holds bzip2 data; eib reads gz, xz and zst"
	case at(0x8001, "CD001"):
		return "it holds an ISO 9660 file system without a partition table"
	case at(0, "PK\x03\x04"):
		return "it holds a zip archive"
	case at(257, "ustar"):
		return "it holds a tar archive"
	case at(0, "KDMV"), at(0, "# Disk DescriptorFile"):
		return "it is a VMDK disk; convert it with qemu-img convert -O raw"
	case at(0, "vhdxfile"):
		return "it is a VHDX disk; convert it with qemu-img convert -O raw"
	case at(0, "\x7fELF"):
		return "it is an ELF executable"
	case len(head) > 0 && isAllZero(head):
		return fmt.Sprintf("its first %d bytes are all zero", len(head))
	}
	return ""
}

func isAllZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// suffixes are the names of the compressions, for the hint on a file named
// like one whose content is not.
var suffixes = []struct {
	suffix string
	format Format
	name   string
}{
	{".gz", FormatGzip, "gzip"},
	{".xz", FormatXz, "xz"},
	{".zst", FormatZstd, "zstd"},
	{".qcow2", FormatQCOW2, "qcow2"},
}

// sniff reads the head of the image at path without blocking on anything
// that is not a regular file (it is stat'ed first and opened with
// O_NONBLOCK) and returns it with the Format its magic says ("" when no
// magic matched: raw, or nothing). Errors are *InputError.
func sniff(path string) (Format, []byte, error) {
	refuse := func(reason string) (Format, []byte, error) {
		return "", nil, &InputError{Path: path, Reason: reason}
	}
	st, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return refuse("no such file")
	}
	if err != nil {
		return refuse("cannot read it: " + unwrapPath(err))
	}
	if what := fileKind(st.Mode()); what != "" {
		return refuse("not a disk image: " + what)
	}
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return refuse("cannot read it: " + unwrapPath(err))
	}
	defer f.Close()
	// It may have been replaced since the stat: look at what was opened.
	if st, err = f.Stat(); err != nil {
		return refuse("cannot read it: " + unwrapPath(err))
	}
	if what := fileKind(st.Mode()); what != "" {
		return refuse("not a disk image: " + what)
	}
	if st.Size() == 0 {
		return refuse("not a disk image: an empty file")
	}
	head := make([]byte, headSize)
	n, err := io.ReadFull(f, head)
	if err != nil && err != io.ErrUnexpectedEOF {
		return refuse("cannot read it: " + unwrapPath(err))
	}
	head = head[:n]
	return magic(head), head, nil
}

// fileKind names a file type that cannot be an image ("" for a regular
// file): config.FileKind's names, with why a block device is refused.
func fileKind(m fs.FileMode) string {
	switch {
	case m.IsRegular():
		return ""
	case m&fs.ModeDevice != 0 && m&fs.ModeCharDevice == 0:
		return "a block device (the boot check boots image files)"
	}
	return config.FileKind(m)
}

// unwrapPath drops the operation and path of a *fs.PathError (the
// InputError names the path already).
func unwrapPath(err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}

// refusal is the InputError for content that is no image, with what it
// holds and, for a name that promises a format the content lacks, that.
func refusal(path string, head []byte) error {
	var hints []string
	if d := describe(head); d != "" {
		hints = append(hints, d)
	}
	for _, s := range suffixes {
		if strings.HasSuffix(path, s.suffix) {
			hints = append(hints, fmt.Sprintf("its name ends in %s, but it does not hold %s data", s.suffix, s.name))
		}
	}
	reason := notDisk
	if len(hints) > 0 {
		reason += " (" + strings.Join(hints, "; ") + ")"
	}
	return &InputError{Path: path, Reason: reason}
}

// DetectImage tells what the file at path holds and refuses, at once and
// before anything is written or started, whatever the boot check cannot
// boot. It returns FormatRaw for a disk with an MBR or GPT partition table,
// FormatQCOW2 for a qcow2 file, and FormatGzip, FormatXz or FormatZstd when
// the data decompresses (only its first 32 KiB are decompressed, nothing
// is written) to a disk with a partition table. Everything else (a missing
// path, a directory, a FIFO, a device, an empty file, bzip2, an ISO without
// partition table, random bytes) is an *InputError naming the path and what
// it is. Other errors (no decompressor installed, ctx cancelled) are not.
func DetectImage(ctx context.Context, path string) (Format, error) {
	format, head, err := sniff(path)
	if err != nil {
		return "", err
	}
	switch {
	case format == FormatQCOW2:
		return format, nil
	case format.Compressed():
		inner, err := decompressedHead(ctx, path, format)
		if err != nil {
			return "", err
		}
		if !hasPartitionTable(inner) {
			reason := fmt.Sprintf("not a disk image: %s data whose content has no MBR or GPT partition table", toolName(format))
			if d := describe(inner); d != "" {
				reason += " (" + d + ")"
			}
			return "", &InputError{Path: path, Reason: reason}
		}
		return format, nil
	case hasPartitionTable(head):
		return FormatRaw, nil
	}
	return "", refusal(path, head)
}

func toolName(f Format) string {
	for _, s := range suffixes {
		if s.format == f {
			return s.name
		}
	}
	return string(f)
}
