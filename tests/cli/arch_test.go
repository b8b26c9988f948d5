package cli

import "runtime"

func runtimeArch() string { return runtime.GOARCH }
