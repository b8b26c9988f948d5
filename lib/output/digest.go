package output

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"hash"
	"io"

	"github.com/eib-builder/eib/lib/sign"
)

// digest computes, in one pass, the SHA-256 of a stream and its detached
// signature. With an OpenPGP v4 key both come from one SHA-256
// computation (the signature hashes the bytes, then its own trailer).
type digest struct {
	h   hash.Hash   // nil when sig provides the checksum
	sig sign.Stream // nil when not signing
	w   io.Writer
	n   int64
}

func newDigest(ctx context.Context, s sign.Signer) (*digest, error) {
	d := &digest{}
	if s != nil {
		st, err := s.Begin(ctx)
		if err != nil {
			return nil, err
		}
		d.sig = st
		if _, ok := st.(sign.Checksummer); ok {
			d.w = st
			return d, nil
		}
	}
	d.h = sha256.New()
	if d.sig != nil {
		d.w = io.MultiWriter(d.h, d.sig)
	} else {
		d.w = d.h
	}
	return d, nil
}

func (d *digest) Write(p []byte) (int, error) {
	n, err := d.w.Write(p)
	d.n += int64(n)
	return n, err
}

// finish returns the hex SHA-256 and, when signing, the armored signature.
func (d *digest) finish(sigOut io.Writer) (string, error) {
	if d.sig != nil {
		if err := d.sig.Finish(sigOut); err != nil {
			return "", err
		}
		if cs, ok := d.sig.(sign.Checksummer); ok {
			return hex.EncodeToString(cs.SHA256()), nil
		}
	}
	return hex.EncodeToString(d.h.Sum(nil)), nil
}

func (d *digest) abort() {
	if d.sig != nil {
		d.sig.Abort()
	}
}
