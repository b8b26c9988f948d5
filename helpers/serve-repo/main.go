// Command serve-repo publishes a directory (an OSTree archive repo) over
// HTTP on 127.0.0.1, on a free port unless -addr says otherwise, prints
// the URL on stdout and serves until SIGINT or SIGTERM.
//
//	go run ./helpers/serve-repo [-addr 127.0.0.1:0] [-ini FILE] DIR
//
// With -ini, it also writes FILE (atomically, once listening) as an eib
// config file that points the build at it:
//
//	[ostree]
//	pull_url = http://127.0.0.1:PORT/
//
// e.g. -ini LOCALDIR/config/product/demo.ini for `eib --product demo
// --localdir LOCALDIR`.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "address to listen on (port 0: any free port)")
	ini := flag.String("ini", "", "write an eib config file setting [ostree] pull_url to the served URL")
	flag.Usage = func() {
		fmt.Fprintln(flag.CommandLine.Output(), "usage: serve-repo [-addr HOST:PORT] [-ini FILE] DIR")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() != 1 {
		flag.Usage()
		os.Exit(2)
	}
	if err := serve(flag.Arg(0), *addr, *ini); err != nil {
		log.SetFlags(0)
		log.Fatalf("serve-repo: %v", err)
	}
}

func serve(dir, addr, ini string) error {
	if st, err := os.Stat(dir); err != nil {
		return err
	} else if !st.IsDir() {
		return fmt.Errorf("%s is not a directory", dir)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	url := "http://" + ln.Addr().String() + "/"
	if ini != "" {
		if err := writeINI(ini, url); err != nil {
			ln.Close()
			return err
		}
	}
	fmt.Println(url)

	srv := &http.Server{Handler: http.FileServer(http.Dir(dir)), ReadHeaderTimeout: 10 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdown)
	}()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func writeINI(path, url string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp := path + ".tmp"
	content := "# Written by helpers/serve-repo: the URL it serves the repo on.\n[ostree]\npull_url = " + url + "\n"
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
