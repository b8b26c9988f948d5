package stage

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/eib-builder/eib/lib/build"
	"github.com/eib-builder/eib/lib/check"
	"github.com/eib-builder/eib/lib/config"
)

// GuestResultsEnv names, for the check hooks (and the error stage's), the
// JSON file of the in-guest checks' results (guestResult, one per command
// run), ${tmpdir}/guest-commands.json.
const GuestResultsEnv = "EIB_CHECK_GUEST_RESULTS"

// guestSettings are the in-guest checks of [check]: guest_commands,
// guest_user, guest_password_file and guest_command_timeout.
type guestSettings struct {
	commands     []string      // one shell command each, in order; none: no guest session
	user         string        // the getty's login name
	passwordFile string        // "" = the user has no password
	password     string        // its first line, read by the plan
	timeout      time.Duration // per command
}

// readGuestSettings reads the guest_* keys of [check] into s through r (the
// caller checks r.Err). guest_commands is a multi-line value: each line
// that is not blank is one command (the parser already trimmed the lines).
// guest_user must be one word; guest_password_file, when set, must be a
// readable file whose first line is not empty (it is read now, so that a
// missing file stops the build before any work); guest_command_timeout must
// be positive.
func readGuestSettings(r *config.Reader) guestSettings {
	var g guestSettings
	for _, line := range strings.Split(r.String("check", "guest_commands"), "\n") {
		if line = strings.TrimSpace(line); line != "" {
			g.commands = append(g.commands, line)
		}
	}
	g.user = strings.TrimSpace(r.String("check", "guest_user"))
	if r.Err() == nil && (g.user == "" || len(strings.Fields(g.user)) != 1) {
		r.Reject("check", "guest_user", "%q: must be one login name", g.user)
	}
	if g.timeout = r.Seconds("check", "guest_command_timeout"); r.Err() == nil && g.timeout <= 0 {
		r.Reject("check", "guest_command_timeout", "%d: must be a positive number of seconds", g.timeout/time.Second)
	}
	if g.passwordFile = r.Path("check", "guest_password_file"); g.passwordFile != "" && r.Err() == nil {
		data, err := os.ReadFile(g.passwordFile)
		if err != nil {
			r.Reject("check", "guest_password_file", "%v", err)
			return g
		}
		first, _, _ := strings.Cut(string(data), "\n")
		if g.password = strings.TrimRight(first, "\r"); g.password == "" {
			r.Reject("check", "guest_password_file", "%s: the first line (the password of %s) is empty", g.passwordFile, g.user)
		}
	}
	return g
}

// guestResult is one guest command's outcome, as ${tmpdir}/guest-commands.json
// lists it (the build log's secrets masked in Output).
type guestResult struct {
	Image    string  `json:"image"`
	Firmware string  `json:"firmware"`
	Command  string  `json:"command"`
	Result   string  `json:"result"`      // "ok", "failed" (exit status not 0) or "error" (timeout, the guest went away)
	Exit     int     `json:"exit_status"` // -1 when the command did not finish
	Seconds  float64 `json:"seconds"`
	Output   string  `json:"output"`
	Error    string  `json:"error,omitempty"`
}

// guestOutputTail is how many lines of a failed command's output the error
// shows (all of it is in the build log).
const guestOutputTail = 20

// runGuestCommands boots image (the file the check boots: the console copy
// of [check] serial_console) once more with fw under accel, logs in at the
// console's getty (within [check] boot_timeout) and runs g.commands in
// order, each within g.timeout. Each command's output goes to the build
// log, line by line; its result is appended to *results. The first command
// that exits non-zero or does not finish is the error, naming the image,
// the firmware, the command, its exit status and the last lines of its
// output. The console is logged to logPath.
func runGuestCommands(ctx context.Context, b *build.Build, s checkSettings, tmpdir, name, image string, fw check.Firmware, accel check.Accel, logPath string, results *[]guestResult) error {
	g := s.guest
	dir, err := os.MkdirTemp(tmpdir, "guest-")
	if err != nil {
		return fmt.Errorf("check: guest commands: %w", err)
	}
	defer os.RemoveAll(dir)
	log, err := os.Create(logPath)
	if err != nil {
		return fmt.Errorf("check: guest commands: %w", err)
	}
	defer log.Close()
	sess, err := check.NewSession(ctx, check.SessionOptions{Image: image, Dir: dir, Firmware: fw,
		MemoryMiB: s.memoryMiB, Accel: accel, Log: log})
	if err != nil {
		return fmt.Errorf("[check] guest_commands: %s: %w", name, err)
	}
	defer sess.Close()
	checkPrintf(b, "guest commands: booting %s with %s firmware (%s) and logging in as %s; console in %s",
		name, fw, accel, g.user, logPath)
	if l, ok := b.Log.(interface{ AddSecrets(...string) }); ok && g.password != "" {
		l.AddSecrets(g.password) // a command that prints it shows ***
	}
	start := time.Now()
	if err := sess.Boot(); err != nil {
		return fmt.Errorf("[check] guest_commands: %s: %w", name, err)
	}
	if err := sess.LoginWithPassword(ctx, g.user, g.password, s.timeout); err != nil {
		return fmt.Errorf("[check] guest_commands: %s with %s firmware: logging in as %s ([check] guest_user) within %s ([check] boot_timeout): %w\nconsole log: %s",
			name, fw, g.user, s.timeout, err, logPath)
	}
	checkPrintf(b, "guest commands: logged in as %s after %.1f s", g.user, time.Since(start).Seconds())
	for i, cmd := range g.commands {
		t0 := time.Now()
		out, rc, err := sess.Run(ctx, cmd, g.timeout)
		res := guestResult{Image: name, Firmware: string(fw), Command: cmd, Exit: rc,
			Seconds: time.Since(t0).Seconds(), Output: maskLog(b, out), Result: "ok"}
		lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
		if out == "" {
			lines = nil
		}
		for _, l := range lines {
			checkPrintf(b, "guest $ %s | %s", cmd, l)
		}
		switch {
		case err != nil:
			res.Result, res.Exit, res.Error = "error", -1, maskLog(b, err.Error())
		case rc != 0:
			res.Result = "failed"
		}
		*results = append(*results, res)
		if res.Result == "ok" {
			checkPrintf(b, "guest command %d of %d passed in %.1f s: %s", i+1, len(g.commands), res.Seconds, cmd)
			continue
		}
		tail := lines
		if len(tail) > guestOutputTail {
			tail = tail[len(tail)-guestOutputTail:]
		}
		var msg strings.Builder
		if err != nil {
			fmt.Fprintf(&msg, "did not finish within %s ([check] guest_command_timeout) or the guest went away: %v", g.timeout, err)
		} else {
			fmt.Fprintf(&msg, "exit status %d", rc)
			if len(tail) == 0 {
				msg.WriteString(" (no output)")
			} else {
				fmt.Fprintf(&msg, "; last %d lines of its output:", len(tail))
				for _, l := range tail {
					msg.WriteString("\n  | " + l)
				}
			}
		}
		return fmt.Errorf("[check] guest_commands: %s with %s firmware: command %d of %d %q: %s\nconsole log: %s",
			name, fw, i+1, len(g.commands), cmd, maskLog(b, msg.String()), logPath)
	}
	return nil
}

// writeGuestResults writes results to ${tmpdir}/guest-commands.json and
// names it in GuestResultsEnv.
func writeGuestResults(b *build.Build, tmpdir string, results []guestResult) error {
	if results == nil {
		results = []guestResult{}
	}
	data, err := json.MarshalIndent(results, "", "  ")
	if err != nil {
		return err
	}
	path := filepath.Join(tmpdir, "guest-commands.json")
	if err := os.WriteFile(path, append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("check: %w", err)
	}
	b.SetEnv(GuestResultsEnv, path)
	return nil
}

// maskLog masks the build log's secrets in s, where the log can (the
// build log masks every line it writes itself).
func maskLog(b *build.Build, s string) string {
	if m, ok := b.Log.(interface{ MaskString(string) string }); ok {
		return m.MaskString(s)
	}
	return s
}
