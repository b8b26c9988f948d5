package output

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/eib-builder/eib/lib/sign"
)

// pending is a set of output files being written under temporary names;
// commit renames them all to their final names, abort removes them.
type pending struct {
	files []pendingFile
}

type pendingFile struct {
	f     *os.File
	final string
}

// create opens a temporary file for final: a hidden name in the same
// directory (".NAME.tmp-*"), mode 0644.
func (p *pending) create(final string) (*os.File, error) {
	f, err := createTemp(final)
	if err != nil {
		return nil, err
	}
	p.files = append(p.files, pendingFile{f, final})
	return f, nil
}

// write creates final with content.
func (p *pending) write(final string, content []byte) error {
	f, err := p.create(final)
	if err != nil {
		return err
	}
	if _, err := f.Write(content); err != nil {
		return fmt.Errorf("writing %s: %w", final, err)
	}
	return nil
}

// commit closes and renames every file, the first created last (the
// image appears after its checksum and signature files); on an error the
// files not yet renamed are removed.
func (p *pending) commit() error {
	for _, pf := range p.files {
		if err := pf.f.Close(); err != nil {
			p.abort()
			return fmt.Errorf("writing %s: %w", pf.final, err)
		}
	}
	for len(p.files) > 0 {
		pf := p.files[len(p.files)-1]
		if err := os.Rename(pf.f.Name(), pf.final); err != nil {
			p.abort()
			return err
		}
		p.files = p.files[:len(p.files)-1]
	}
	return nil
}

// abort removes every temporary file not yet renamed.
func (p *pending) abort() {
	for _, pf := range p.files {
		pf.f.Close()
		os.Remove(pf.f.Name())
	}
	p.files = nil
}

func createTemp(final string) (*os.File, error) {
	f, err := os.CreateTemp(filepath.Dir(final), "."+filepath.Base(final)+".tmp-*")
	if err != nil {
		return nil, err
	}
	if err := f.Chmod(0o644); err != nil {
		f.Close()
		os.Remove(f.Name())
		return nil, err
	}
	return f, nil
}

// WriteFile creates path through a temporary file in the same directory,
// filled by write and renamed over path only when complete; on failure the
// temporary file is removed.
func WriteFile(path string, write func(w io.Writer) error) error {
	var p pending
	f, err := p.create(path)
	if err != nil {
		return err
	}
	if err := write(f); err != nil {
		p.abort()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return p.commit()
}

// CopyFile copies src to dst (through a temporary name).
func CopyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	return WriteFile(dst, func(w io.Writer) error {
		_, err := io.Copy(w, in)
		return err
	})
}

// SignFile writes the armored detached signature of the file at path to
// out (EIB's sign_file; out defaults to path + ".asc").
func SignFile(ctx context.Context, s sign.Signer, path, out string) error {
	if s == nil {
		return errors.New("no signing key configured")
	}
	if out == "" {
		out = path + ".asc"
	}
	in, err := os.Open(path)
	if err != nil {
		return err
	}
	defer in.Close()
	st, err := s.Begin(ctx)
	if err != nil {
		return err
	}
	defer st.Abort()
	if _, err := io.Copy(st, in); err != nil {
		return fmt.Errorf("signing %s: %w", path, err)
	}
	return WriteFile(out, st.Finish)
}

// SHA256File returns the hex SHA-256 and the size of a file.
func SHA256File(path string) (string, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return "", 0, fmt.Errorf("reading %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}
