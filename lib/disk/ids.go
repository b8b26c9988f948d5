package disk

import (
	"crypto/rand"
	"crypto/sha256"
	"fmt"
)

// IDs are the identifiers a plan gives its disk, partitions and
// filesystems. Seeded IDs make reproducible images; random ones are what
// every other image gets.
type IDs struct {
	seed string // "" = random
}

// RandomIDs returns a source of random identifiers.
func RandomIDs() IDs { return IDs{} }

// SeededIDs returns identifiers derived from seed (e.g. the outversion and
// the OSTree commit), the same for the same seed.
func SeededIDs(seed string) IDs { return IDs{seed: seed} }

// bytes returns 16 bytes for purpose.
func (s IDs) bytes(purpose string) [16]byte {
	var b [16]byte
	if s.seed == "" {
		if _, err := rand.Read(b[:]); err != nil {
			// crypto/rand never fails on Linux (getrandom); fall back to
			// a derived value rather than panic.
			sum := sha256.Sum256([]byte(purpose))
			copy(b[:], sum[:])
		}
		return b
	}
	sum := sha256.Sum256([]byte("eib disk id\x00" + s.seed + "\x00" + purpose))
	copy(b[:], sum[:])
	return b
}

// UUID returns an RFC 9562 UUID (version 4 bits when random, version 8,
// "custom", when derived) for purpose.
func (s IDs) UUID(purpose string) string {
	b := s.bytes(purpose)
	version := byte(0x40)
	if s.seed != "" {
		version = 0x80
	}
	b[6] = b[6]&0x0f | version
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// VolumeID returns a FAT volume ID (8 hex digits) for purpose.
func (s IDs) VolumeID(purpose string) string {
	b := s.bytes(purpose)
	return fmt.Sprintf("%x", b[0:4])
}

// DOSDiskID returns a dos label's disk identifier (0x + 8 hex digits).
func (s IDs) DOSDiskID(purpose string) string {
	b := s.bytes(purpose)
	if b[0]|b[1]|b[2]|b[3] == 0 {
		b[3] = 1
	}
	return fmt.Sprintf("0x%x", b[0:4])
}

// AssignIDs gives the plan's disk, partitions and filesystems their
// identifiers.
func (p *Plan) AssignIDs(ids IDs) {
	if p.Layout.Label == GPT {
		p.DiskID = ids.UUID("disk")
	} else {
		p.DiskID = ids.DOSDiskID("disk")
	}
	for i := range p.Partitions {
		pl := &p.Partitions[i]
		n := fmt.Sprintf("partition %d %s", pl.Number, pl.Role)
		if p.Layout.Label == GPT {
			pl.UUID = ids.UUID(n)
		}
		switch pl.FS {
		case FSExt4:
			pl.FSUUID = ids.UUID("fs " + n)
		case FSVFAT:
			pl.FSUUID = ids.VolumeID("fs " + n)
		}
	}
}
