package main

import "github.com/eib-builder/eib/lib/platform"

// SupportedArches are the values of --arch (and of eib sign's): the
// Debian architectures of the platform table's generic images.
var SupportedArches = platform.Arches()
