package sign

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os/exec"
	"strings"
)

// GPG signs by piping the stream into `gpg --detach-sign` with a key of a
// gpg home directory (EIB's way: image:signing_keyid).
type GPG struct {
	KeyID          string
	Home           string // "" = gpg's default
	PassphraseFile string // "" = none (gpg-agent may still ask)
}

func (g *GPG) String() string {
	home := g.Home
	if home == "" {
		home = "gpg's default home"
	}
	return fmt.Sprintf("gpg key %s in %s", g.KeyID, home)
}

func (g *GPG) args() []string {
	args := []string{"--batch", "--no-tty", "--armor", "--detach-sign", "--digest-algo", "SHA256",
		"--local-user", g.KeyID, "--output", "-"}
	if g.Home != "" {
		args = append([]string{"--homedir", g.Home}, args...)
	}
	if g.PassphraseFile != "" {
		args = append([]string{"--pinentry-mode", "loopback", "--passphrase-file", g.PassphraseFile}, args...)
	}
	return args
}

// Begin starts gpg, which reads the stream on its standard input.
func (g *GPG) Begin(ctx context.Context) (Stream, error) {
	cmd := exec.CommandContext(ctx, "gpg", g.args()...)
	s := &gpgStream{g: g, cmd: cmd}
	cmd.Stdout = &s.out
	cmd.Stderr = &s.errOut
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	s.in = in
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("signing with %s: %w", g, err)
	}
	return s, nil
}

type gpgStream struct {
	g           *GPG
	cmd         *exec.Cmd
	in          io.WriteCloser
	out, errOut bytes.Buffer
	done        bool
}

func (s *gpgStream) Write(p []byte) (int, error) {
	n, err := s.in.Write(p)
	if err != nil {
		return n, fmt.Errorf("signing with %s: %w", s.g, err)
	}
	return n, nil
}

func (s *gpgStream) Finish(w io.Writer) error {
	if s.done {
		return fmt.Errorf("signature with %s already finished", s.g)
	}
	s.done = true
	s.in.Close()
	if err := s.cmd.Wait(); err != nil {
		return fmt.Errorf("gpg %s: %w: %s", strings.Join(s.g.args(), " "), err, strings.TrimSpace(s.errOut.String()))
	}
	_, err := w.Write(s.out.Bytes())
	return err
}

func (s *gpgStream) Abort() {
	if s.done {
		return
	}
	s.done = true
	s.in.Close()
	if s.cmd.Process != nil {
		s.cmd.Process.Kill()
	}
	s.cmd.Wait()
}
