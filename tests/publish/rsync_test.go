package publish

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/eib-builder/eib/tests/harness"
)

// sshServer is a real sshd on 127.0.0.1 with a throw-away host key that
// lets in one throw-away user key (as the current user).
type sshServer struct {
	port       int
	userKey    string // private key file
	knownHosts string // holds the server's host key
	user       string
}

func startSSHD(t *testing.T) *sshServer {
	t.Helper()
	harness.Need(t, "ssh", "ssh-keygen", "rsync", "sha256sum")
	sshd := "/usr/sbin/sshd"
	if _, err := os.Stat(sshd); err != nil {
		t.Skip("sshd is not installed (openssh-server)")
	}
	dir := t.TempDir()
	keygen := func(name string) {
		if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", filepath.Join(dir, name)).CombinedOutput(); err != nil {
			t.Fatalf("ssh-keygen: %v\n%s", err, out)
		}
	}
	keygen("host_key")
	keygen("user_key")
	userPub := mustRead(t, filepath.Join(dir, "user_key.pub"))
	if err := os.WriteFile(filepath.Join(dir, "authorized_keys"), userPub, 0o600); err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	user := os.Getenv("USER")
	if user == "" {
		user = "root"
	}
	cfg := fmt.Sprintf(`Port %d
ListenAddress 127.0.0.1
HostKey %s/host_key
PidFile none
AuthorizedKeysFile %s/authorized_keys
StrictModes no
UsePAM no
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
AllowUsers %s
`, port, dir, dir, user)
	if err := os.WriteFile(filepath.Join(dir, "sshd_config"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	// sshd's privilege separation directory, which the openssh-server
	// service normally creates at boot. It is made here when missing and
	// left in place: removing it at a test's end raced with a later test's
	// sshd ("Missing privilege separation directory: /run/sshd").
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
		t.Fatalf("sshd needs /run/sshd: %v", err)
	}
	cmd := exec.Command(sshd, "-D", "-e", "-f", filepath.Join(dir, "sshd_config"))
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	logFile, err := os.Create(filepath.Join(dir, "sshd.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting sshd: %v", err)
	}
	t.Cleanup(func() {
		// The listener and any session it still serves.
		syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		cmd.Wait()
		logFile.Close()
		if t.Failed() {
			t.Logf("sshd log:\n%s", mustRead(t, filepath.Join(dir, "sshd.log")))
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("sshd does not listen on 127.0.0.1:%d:\n%s", port, mustRead(t, filepath.Join(dir, "sshd.log")))
		}
		time.Sleep(50 * time.Millisecond)
	}
	hostPub := strings.Fields(string(mustRead(t, filepath.Join(dir, "host_key.pub"))))
	known := fmt.Sprintf("[127.0.0.1]:%d %s %s\n", port, hostPub[0], hostPub[1])
	if err := os.WriteFile(filepath.Join(dir, "known_hosts"), []byte(known), 0o644); err != nil {
		t.Fatal(err)
	}
	return &sshServer{port: port, userKey: filepath.Join(dir, "user_key"), knownHosts: filepath.Join(dir, "known_hosts"), user: user}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// env is the [publish] configuration of an rsync destination dest (a path
// on the server).
func (s *sshServer) env(dest string) []string {
	return []string{
		"EIB_PUBLISH_RSYNC_DEST=" + s.user + "@127.0.0.1:" + dest,
		"EIB_PUBLISH_SSH_KEY=" + s.userKey,
		"EIB_PUBLISH_SSH_KNOWN_HOSTS=" + s.knownHosts,
		"EIB_PUBLISH_SSH_PORT=" + strconv.Itoa(s.port),
	}
}

func TestRsyncPublishOverSSH(t *testing.T) {
	srv := startSSHD(t)
	r := makeRelease(t, 1<<20)
	dest := filepath.Join(t.TempDir(), "srv images") // a space: quoting on the remote side
	out, err := runPublish(t, r.env(t, srv.env(dest)...))
	if err != nil {
		t.Fatalf("publish with rsync: %v\n%s", err, out)
	}
	assertRelease(t, filepath.Join(dest, r.ov), r)
	assertMissing(t, filepath.Join(dest, "."+r.ov+".inprogress"))

	out, err = runPublish(t, r.env(t, srv.env(dest)...))
	if err != nil || !strings.Contains(out, "already published") {
		t.Errorf("rerun: err %v, want \"already published\":\n%s", err, out)
	}
}

func TestRsyncRefusesUnknownHostKey(t *testing.T) {
	srv := startSSHD(t)
	r := makeRelease(t, 1024)
	dest := filepath.Join(t.TempDir(), "images")
	// A known-hosts file with another host key for this address: what a
	// man in the middle looks like.
	other := filepath.Join(t.TempDir(), "other")
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", other).CombinedOutput(); err != nil {
		t.Fatal(err, string(out))
	}
	pub := strings.Fields(string(mustRead(t, other+".pub")))
	wrong := filepath.Join(t.TempDir(), "known_hosts")
	if err := os.WriteFile(wrong, []byte(fmt.Sprintf("[127.0.0.1]:%d %s %s\n", srv.port, pub[0], pub[1])), 0o644); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(t.TempDir(), "empty_known_hosts")
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, kh := range []string{wrong, empty} {
		env := r.env(t, append(srv.env(dest), "EIB_PUBLISH_SSH_KNOWN_HOSTS="+kh)...)
		out, err := runPublish(t, env)
		if err == nil || !strings.Contains(out, "Host key verification failed") {
			t.Errorf("known_hosts %s: err %v, want a host key failure:\n%s", filepath.Base(kh), err, out)
		}
		assertMissing(t, dest)
	}
	// And a missing known-hosts file is a configuration error naming the key.
	env := r.env(t, append(srv.env(dest), "EIB_PUBLISH_SSH_KNOWN_HOSTS=/nonexistent/known_hosts")...)
	if out, err := runPublish(t, env); err == nil || !strings.Contains(out, "[publish] ssh_known_hosts = /nonexistent/known_hosts") {
		t.Errorf("missing known_hosts: err %v:\n%s", err, out)
	}
}

// TestRsyncKilledMidwayLeavesNothingVisibleAndRerunCompletes kills the
// rsync of a slowed-down upload: the final name must not exist, and the
// next run must finish the release.
func TestRsyncKilledMidwayLeavesNothingVisibleAndRerunCompletes(t *testing.T) {
	srv := startSSHD(t)
	r := makeRelease(t, 6<<20)
	dest := filepath.Join(t.TempDir(), "images")
	final := filepath.Join(dest, r.ov)
	staging := filepath.Join(dest, "."+r.ov+".inprogress")

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	env := r.env(t, append(srv.env(dest), "EIB_PUBLISH_RSYNC_OPTIONS=--bwlimit=1000")...)
	var log strings.Builder
	done := make(chan error, 1)
	go func() { done <- publishCtx(ctx, env, &log) }()
	// Wait until the upload is under way: bytes in the staging directory.
	var rsyncPID int
	deadline := time.Now().Add(60 * time.Second)
	for rsyncPID == 0 || stagedBytes(staging) < 1<<20 {
		if time.Now().After(deadline) {
			cancel()
			<-done
			t.Fatalf("the upload did not start (rsync pid %d, %d bytes staged):\n%s", rsyncPID, stagedBytes(staging), log.String())
		}
		if rsyncPID == 0 {
			rsyncPID = childNamed(os.Getpid(), "rsync")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := syscall.Kill(rsyncPID, syscall.SIGKILL); err != nil {
		t.Fatalf("killing rsync %d: %v", rsyncPID, err)
	}
	if err := <-done; err == nil {
		t.Fatalf("publishing succeeded although its rsync was killed:\n%s", log.String())
	}
	assertMissing(t, final)
	if stagedBytes(staging) >= int64(len(r.files[r.ov+".img.zst"])) {
		t.Fatalf("the whole image arrived before the kill; the test did not interrupt anything")
	}
	t.Logf("killed rsync with %d bytes staged", stagedBytes(staging))

	out, err := runPublish(t, r.env(t, srv.env(dest)...))
	if err != nil {
		t.Fatalf("rerun after the kill: %v\n%s", err, out)
	}
	assertRelease(t, final, r)
	assertMissing(t, staging)
}

// stagedBytes is the size of every file under dir (0 if it does not exist).
func stagedBytes(dir string) int64 {
	var n int64
	filepath.Walk(dir, func(_ string, info os.FileInfo, err error) error {
		if err == nil && info.Mode().IsRegular() {
			n += info.Size()
		}
		return nil
	})
	return n
}

// childNamed returns the pid of a direct child of parent whose command
// name is name, or 0.
func childNamed(parent int, name string) int {
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		f, err := os.Open(filepath.Join("/proc", e.Name(), "status"))
		if err != nil {
			continue
		}
		var comm string
		ppid := -1
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			k, v, _ := strings.Cut(sc.Text(), ":")
			switch k {
			case "Name":
				comm = strings.TrimSpace(v)
			case "PPid":
				ppid, _ = strconv.Atoi(strings.TrimSpace(v))
			}
		}
		f.Close()
		if ppid == parent && comm == name {
			return pid
		}
	}
	return 0
}
