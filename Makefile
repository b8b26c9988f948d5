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
# dracut with ostree; minutes, not part of make test), committed as branch
# "debian" of the demo repo. Build its image like the demo's, with branch
# debian: ./eib --product demo --localdir <demo localdir> debian
demo-debian: deps
	./helpers/make-demo-repo --debian

clean:
	rm -f eib
