package output

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// The pass over the raw image, measured on a 2-core machine (see
// BenchmarkOnePassVsBareZstd): compression and SHA-256 need all the CPU,
// so the pass avoids every other cost it can.
//   - Holes (SEEK_DATA/SEEK_HOLE) are not read: a freshly written sparse
//     image costs the kernel about 2 s per GiB of holes on its first
//     read; they are hashed and compressed from a buffer of zeros.
//   - With an external compressor (zstd, xz), data is spliced from the
//     page cache into a pipe and tee'd into the tool's input: the bytes
//     are copied once, into our buffer for the hash, instead of twice
//     (read, then write to the tool's pipe).
//   - Reading and hashing overlap (a small pool of buffers).

const (
	// blockSize is the unit of reads, hashing and compressor writes.
	blockSize = 1 << 20
	// minHole is the smallest hole worth skipping; smaller ones are read.
	minHole = 64 << 10
	// pipeSize is the requested capacity of the pipes (F_SETPIPE_SZ).
	pipeSize = 1 << 20
)

// zeros is what a hole reads as. It is never written to (it is spliced
// into the compressor's pipe by reference).
var zeros = make([]byte, blockSize)

// region is a stretch of the raw image: data to read, or a hole that
// reads as zeros.
type region struct {
	off, end int64
	hole     bool
}

// regions lists f's data and holes up to size. A file system without
// SEEK_DATA/SEEK_HOLE gives one data region; holes shorter than minHole
// are merged into the data around them.
func regions(f *os.File, size int64) []region {
	var out []region
	add := func(r region) {
		if r.end <= r.off {
			return
		}
		if r.hole && r.end-r.off < minHole {
			r.hole = false
		}
		if n := len(out); n > 0 && !out[n-1].hole && !r.hole {
			out[n-1].end = r.end
			return
		}
		out = append(out, r)
	}
	fd := int(f.Fd())
	for off := int64(0); off < size; {
		data, err := unix.Seek(fd, off, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) {
			add(region{off, size, true}) // no data after off
			break
		}
		if err != nil {
			add(region{off, size, false}) // no SEEK_DATA: read it all
			break
		}
		data = min(data, size)
		add(region{off, data, true})
		if data >= size {
			break
		}
		hole, err := unix.Seek(fd, data, unix.SEEK_HOLE)
		if err != nil || hole <= data {
			add(region{data, size, false})
			break
		}
		hole = min(hole, size)
		add(region{data, hole, false})
		off = hole
	}
	return out
}

// block is a piece of the raw image on its way to the hash and the
// compressor; buf is returned to the pool when refs drops to 0 (zero
// blocks are not pooled).
type block struct {
	buf    []byte
	n      int
	pooled bool
	refs   *atomic.Int32
}

// pump reads the first size bytes of in once and writes every byte, in
// order, to raw (the digest of the raw image) and to comp (the
// compressor). It returns the number of bytes read.
func pump(ctx context.Context, in *os.File, size int64, raw io.Writer, comp io.Writer, prog *progress) (int64, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	const nbuf = 4
	free := make(chan []byte, nbuf)
	for range nbuf {
		free <- make([]byte, blockSize)
	}
	release := func(b block) {
		if b.pooled && b.refs.Add(-1) == 0 {
			free <- b.buf
		}
	}
	tool, _ := comp.(*toolWriter)
	splice := tool != nil && tool.spliceable()
	refs := int32(1)
	if !splice {
		refs = 2
	}

	// Consumers: the hash (and progress), and, without splice, the
	// compressor's Write. Each drains its channel to the end, so the
	// producer never blocks on a consumer that failed.
	consume := func(ch <-chan block, w io.Writer, count bool, errc chan<- error) {
		var err error
		for b := range ch {
			if err == nil {
				if _, err = w.Write(b.buf[:b.n]); err != nil {
					cancel()
				}
				if count {
					prog.add(b.n)
				}
			}
			release(b)
		}
		errc <- err
	}
	hashc := make(chan block, nbuf)
	hashErr := make(chan error, 1)
	go consume(hashc, raw, true, hashErr)
	var compc chan block
	compErr := make(chan error, 1)
	if splice {
		compErr <- nil
	} else {
		compc = make(chan block, nbuf)
		go consume(compc, comp, false, compErr)
	}
	send := func(b block) {
		if b.pooled {
			b.refs = new(atomic.Int32)
			b.refs.Store(refs)
		}
		hashc <- b
		if compc != nil {
			compc <- b
		}
	}
	getBuf := func() ([]byte, error) {
		select {
		case buf := <-free:
			return buf, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}

	var (
		n   int64
		err error
	)
	if splice {
		n, err = produceSplice(ctx, in, size, tool, send, getBuf)
	} else {
		n, err = produceRead(ctx, in, size, send, getBuf)
	}
	close(hashc)
	if compc != nil {
		close(compc)
	}
	herr, cerr := <-hashErr, <-compErr
	switch {
	case cerr != nil:
		return n, cerr
	case herr != nil:
		return n, herr
	case err != nil && ctx.Err() == nil:
		return n, err
	}
	return n, err
}

// sendZeros sends the blocks of a hole of n bytes.
func sendZeros(n int64, send func(block)) {
	for n > 0 {
		k := int(min(n, blockSize))
		send(block{buf: zeros, n: k})
		n -= int64(k)
	}
}

// produceRead reads the data regions with pread.
func produceRead(ctx context.Context, in *os.File, size int64, send func(block), getBuf func() ([]byte, error)) (int64, error) {
	var n int64
	for _, r := range regions(in, size) {
		if r.hole {
			sendZeros(r.end-r.off, send)
			n += r.end - r.off
			continue
		}
		for off := r.off; off < r.end; {
			buf, err := getBuf()
			if err != nil {
				return n, err
			}
			k, err := in.ReadAt(buf[:min(r.end-off, blockSize)], off)
			if k > 0 {
				send(block{buf: buf, n: k, pooled: true})
				off += int64(k)
				n += int64(k)
			}
			if err == io.EOF {
				return n, nil // shorter than size: the caller says so
			}
			if err != nil {
				return n, fmt.Errorf("reading the raw image: %w", err)
			}
		}
	}
	return n, nil
}

// produceSplice feeds the tool's input pipe without copying the data:
// splice moves page-cache pages into our pipe, tee duplicates them into
// the tool's pipe, and the one copy is our read of our pipe, for the
// hash. Holes are vmspliced from zeros.
func produceSplice(ctx context.Context, in *os.File, size int64, tool *toolWriter, send func(block), getBuf func() ([]byte, error)) (int64, error) {
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		return 0, fmt.Errorf("pipe: %w", err)
	}
	pr, pw := p[0], p[1]
	defer unix.Close(pr)
	defer unix.Close(pw)
	capacity, err := unix.FcntlInt(uintptr(pw), unix.F_SETPIPE_SZ, pipeSize)
	if err != nil {
		capacity = 64 << 10 // the default
	}
	zw := tool.inFD()
	toolErr := func(err error) error { return tool.finish(err) }
	fd := int(in.Fd())

	var (
		n        int64
		buf      []byte
		fill     int
		noSplice bool
	)
	flush := func() {
		if fill > 0 {
			send(block{buf: buf, n: fill, pooled: true})
			buf, fill = nil, 0
		}
	}
	defer flush()
	for _, r := range regions(in, size) {
		if r.hole {
			flush()
			for left := r.end - r.off; left > 0; {
				if err := ctx.Err(); err != nil {
					return n, err
				}
				k := int(min(left, blockSize))
				w, err := vmspliceAll(zw, zeros[:k])
				n += int64(w)
				left -= int64(w)
				if w > 0 {
					send(block{buf: zeros, n: w})
				}
				if err != nil {
					return n, toolErr(err)
				}
			}
			continue
		}
		for off := r.off; off < r.end; {
			if err := ctx.Err(); err != nil {
				return n, err
			}
			if noSplice {
				// read and write, for a file system without splice.
				if buf == nil {
					if buf, err = getBuf(); err != nil {
						return n, err
					}
				}
				m, err := in.ReadAt(buf[fill:min(len(buf), fill+int(r.end-off))], off)
				if m > 0 {
					if err := writeAll(zw, buf[fill:fill+m]); err != nil {
						return n, toolErr(err)
					}
					fill += m
					off += int64(m)
					n += int64(m)
					if fill == len(buf) {
						flush()
					}
				}
				if err == io.EOF {
					return n, nil // shorter than size: the caller says so
				}
				if err != nil {
					return n, fmt.Errorf("reading the raw image: %w", err)
				}
				continue
			}
			k, err := spliceFile(fd, &off, pw, nil, int(min(r.end-off, int64(capacity))), unix.SPLICE_F_MOVE)
			if err == unix.EINTR {
				continue
			}
			if err == unix.EINVAL || err == unix.ENOSYS || err == unix.EOPNOTSUPP {
				noSplice = true
				continue
			}
			if err != nil {
				return n, fmt.Errorf("reading the raw image (splice): %w", err)
			}
			if k == 0 {
				return n, nil // shorter than size: the caller says so
			}
			// Our pipe holds k bytes: tee them into the tool's pipe as it
			// has room, and read what was tee'd into our buffers.
			for left := int(k); left > 0; {
				t64, err := unix.Tee(pr, zw, left, 0)
				t := int(t64)
				if err == unix.EINTR {
					continue
				}
				if err != nil {
					return n, toolErr(err)
				}
				for t > 0 {
					if buf == nil {
						if buf, err = getBuf(); err != nil {
							return n, err
						}
					}
					m, err := unix.Read(pr, buf[fill:min(len(buf), fill+t)])
					if err == unix.EINTR {
						continue
					}
					if err != nil || m == 0 {
						return n, fmt.Errorf("reading the raw image from a pipe: %v", err)
					}
					fill += m
					t -= m
					left -= m
					n += int64(m)
					if fill == len(buf) {
						flush()
					}
				}
			}
		}
	}
	return n, nil
}

// spliceFile is unix.Splice; tests replace it to take the fallback of a
// file system without splice.
var spliceFile = unix.Splice

// writeAll writes p to the blocking fd.
func writeAll(fd int, p []byte) error {
	for len(p) > 0 {
		k, err := unix.Write(fd, p)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		p = p[k:]
	}
	return nil
}

// vmspliceAll hands p to the pipe fd by reference (p must not change
// until the reader has consumed it: zeros never does) and returns how
// many bytes went in.
func vmspliceAll(fd int, p []byte) (int, error) {
	done := 0
	for done < len(p) {
		iov := []unix.Iovec{{Base: &p[done]}}
		iov[0].SetLen(len(p) - done)
		k, err := unix.Vmsplice(fd, iov, 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return done, err
		}
		done += k
	}
	return done, nil
}
