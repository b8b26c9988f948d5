// Package output turns a raw disk image into the files eib publishes, with
// EIB's names, in one pass over the bytes: the compressed image
// (<name>.<gz|xz|zst>), its uncompressed size (.size), its SHA-256
// (.sha256, "<hex>  <basename>") and armored detached signature (.asc),
// and the SHA-256 and signature of the raw image itself (<name>.sha256,
// <name>.asc); optionally a qcow2 copy. Every file is written under a
// temporary name and renamed only when all of them are complete.
package output

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/eib-builder/eib/lib/sign"
	"github.com/eib-builder/eib/lib/terminal"
)

// Image describes the outputs of one raw disk image.
type Image struct {
	// Raw is the raw disk image to read.
	Raw string
	// OutDir receives the outputs.
	OutDir string
	// Name is the raw image's output name, e.g. "<outversion>.img"; the
	// compressed image is Name + "." + Compression.
	Name        string
	Compression Compression
	// Signer signs the raw and the compressed image; nil = no .asc files.
	Signer sign.Signer
	// Logf receives the progress lines when Terminal is nil, and a
	// summary line.
	Logf func(format string, args ...any)
	// Terminal, when not nil, receives a progress bar.
	Terminal io.Writer
	// LogInterval is the time between progress log lines (default 10 s).
	LogInterval time.Duration
	// Progress, when not nil, is the build's terminal (buildlog's
	// Log.Terminal()): the progress goes through it, a bar on a TTY or
	// its log lines otherwise, and Terminal and LogInterval are ignored.
	Progress *terminal.Terminal
	// InProcess compresses zst in process even when the zstd tool is
	// installed.
	InProcess bool
}

// File is one output and its checksum and signature files (base names in
// the output directory; "" when not written).
type File struct {
	Name          string
	Path          string // "" for the raw image, which is not copied to OutDir
	Size          int64
	SHA256        string // hex
	ChecksumFile  string
	SignatureFile string
}

// Result lists what Write produced.
type Result struct {
	Raw        File // the uncompressed image: only its .sha256 and .asc are written
	Compressed File
	SizeFile   string // base name of the .size file
	Seconds    float64
}

// Files returns the base names of every file written, in order.
func (r *Result) Files() []string {
	var out []string
	for _, f := range []string{r.Compressed.Name, r.SizeFile, r.Compressed.ChecksumFile, r.Compressed.SignatureFile, r.Raw.ChecksumFile, r.Raw.SignatureFile} {
		if f != "" {
			out = append(out, f)
		}
	}
	return out
}

// Write reads the raw image once and writes all of its outputs.
func (im Image) Write(ctx context.Context) (res *Result, err error) {
	if _, err := ParseCompression(string(im.Compression)); err != nil {
		return nil, err
	}
	if im.Name == "" {
		im.Name = filepath.Base(im.Raw)
	}
	logf := im.Logf
	if logf == nil {
		logf = func(string, ...any) {}
	}
	start := time.Now()
	in, err := os.Open(im.Raw)
	if err != nil {
		return nil, fmt.Errorf("image outputs: %w", err)
	}
	defer in.Close()
	st, err := in.Stat()
	if err != nil {
		return nil, fmt.Errorf("image outputs: %w", err)
	}
	total := st.Size()

	compName := im.Name + "." + string(im.Compression)
	compPath := filepath.Join(im.OutDir, compName)
	var files pending
	defer func() {
		if err != nil {
			files.abort()
		}
	}()
	compFile, err := files.create(compPath)
	if err != nil {
		return nil, fmt.Errorf("image outputs: %w", err)
	}

	rawDigest, err := newDigest(ctx, im.Signer)
	if err != nil {
		return nil, err
	}
	defer rawDigest.abort()
	compDigest, err := newDigest(ctx, im.Signer)
	if err != nil {
		return nil, err
	}
	defer compDigest.abort()

	// compressor -> (digest of the compressed stream, buffered file)
	fileBuf := bufio.NewWriterSize(compFile, 1<<20)
	sink := io.MultiWriter(compDigest, fileBuf)
	comp, how, err := newCompressor(ctx, im.Compression, sink, im.InProcess)
	if err != nil {
		return nil, fmt.Errorf("compressing %s: %w", im.Raw, err)
	}
	logf("compressing %s (%d MiB) with %s", im.Raw, total>>20, how)

	prog := im.progress(fmt.Sprintf("compressing %s to %s", filepath.Base(im.Raw), compName), total, logf)
	_, err = pump(ctx, in, total, rawDigest, comp, prog)
	prog.end()
	if cerr := comp.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("compressing %s: %w", im.Raw, cerr)
	}
	if err != nil {
		return nil, err
	}
	if st, err := in.Stat(); err == nil && st.Size() != total {
		return nil, fmt.Errorf("image outputs: %s changed size while being read (%d bytes, then %d)", im.Raw, total, st.Size())
	}
	if rawDigest.n != total {
		return nil, fmt.Errorf("image outputs: read %d bytes of %s, its size is %d (changed while reading?)", rawDigest.n, im.Raw, total)
	}
	if err := fileBuf.Flush(); err != nil {
		return nil, fmt.Errorf("writing %s: %w", compPath, err)
	}

	res = &Result{
		Raw:        File{Name: im.Name, Size: total},
		Compressed: File{Name: compName, Path: compPath, Size: compDigest.n},
		SizeFile:   compName + ".size",
	}
	// The sidecar files of both streams.
	for _, s := range []struct {
		f *File
		d *digest
	}{{&res.Raw, rawDigest}, {&res.Compressed, compDigest}} {
		var sig bytes.Buffer
		sum, err := s.d.finish(&sig)
		if err != nil {
			return nil, err
		}
		s.f.SHA256 = sum
		s.f.ChecksumFile = s.f.Name + ".sha256"
		if err := files.write(filepath.Join(im.OutDir, s.f.ChecksumFile), []byte(sum+"  "+s.f.Name+"\n")); err != nil {
			return nil, err
		}
		if im.Signer != nil {
			s.f.SignatureFile = s.f.Name + ".asc"
			if err := files.write(filepath.Join(im.OutDir, s.f.SignatureFile), sig.Bytes()); err != nil {
				return nil, err
			}
		}
	}
	if err := files.write(filepath.Join(im.OutDir, res.SizeFile), []byte(strconv.FormatInt(total, 10)+"\n")); err != nil {
		return nil, err
	}
	if err := files.commit(); err != nil {
		return nil, err
	}
	res.Seconds = time.Since(start).Seconds()
	logf("wrote %s: %d MiB -> %d MiB in %.1f s (%.0f MiB/s)%s", compName, total>>20, res.Compressed.Size>>20,
		res.Seconds, float64(total)/(1<<20)/max(res.Seconds, 1e-3), signedNote(im.Signer))
	return res, nil
}

func signedNote(s sign.Signer) string {
	if s == nil {
		return ", not signed"
	}
	return ", signed with " + s.String()
}

func (im Image) interval() time.Duration {
	if im.LogInterval > 0 {
		return im.LogInterval
	}
	return 10 * time.Second
}
