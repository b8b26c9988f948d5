# eib: build, test, demo. `make deps` installs what a fresh Debian host needs.
SHELL := /bin/bash
GO ?= go
export GOFLAGS ?= -buildvcs=false

.PHONY: all build deps test vet unit e2e demo demo-debian clean

all: build

build:
	$(GO) build -o eib ./cmd/eib

# Check the Go toolchain (README says how to install Go 1.26), then install
# the Debian packages listed in helpers/debian-packages.txt that are not
# installed yet (needs root; a no-op when everything is there).
deps:
	./helpers/check-go
	./helpers/install-deps

vet:
	$(GO) vet ./...

unit: build
	$(GO) test ./lib/... ./cmd/...

e2e: build
	$(GO) test -count=1 ./tests/...

test: deps build vet
	$(GO) test -count=1 -timeout 60m ./...

# The README's main command: build the demo OS, serve it on 127.0.0.1, build
# its image through every stage (boot checks included) into ./demo-out/.
demo: deps build
	./helpers/demo

# The Debian variant of the demo OS (mmdebstrap minbase + systemd + kernel +
# dracut with ostree; minutes the first time, the .debs and the committed
# tree are cached in /var/cache/eib-demo-deb or $EIB_TEST_DEBIAN_CACHE),
# committed as branch "debian" of the demo repo, then its image built by
# eib and booted with BIOS and UEFI; prints the boot times. It is the first
# half of tests/debian (the update test is the rest: make test runs both).
demo-debian: deps build
	$(GO) test -count=1 -v -timeout 60m -run 'TestDebianBootsAndFollowsItsUpdates/^$$' ./tests/debian | \
	  grep -E 'Debian|image built|boot to the marker|^(---|ok|FAIL|PASS)'; exit $${PIPESTATUS[0]}

clean:
	rm -f eib
