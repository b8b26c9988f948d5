package farm

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"text/template"

	"github.com/eib-builder/eib/lib/matrix"
)

// Worker is one Buildbot worker: one build host. Arches are the arches
// it builds (none: every arch).
type Worker struct {
	Name   string   `json:"name"`
	Arches []string `json:"arches"`
}

// ParseWorker reads NAME or NAME:ARCH,ARCH (eib farm buildbot --worker).
func ParseWorker(s string) (Worker, error) {
	name, arches, _ := strings.Cut(s, ":")
	if !nameRE.MatchString(name) {
		return Worker{}, fmt.Errorf("worker %q: a name is letters, digits, '.', '_' and '-'", s)
	}
	w := Worker{Name: name, Arches: []string{}}
	for _, a := range strings.Split(arches, ",") {
		if a = strings.TrimSpace(a); a != "" {
			w.Arches = append(w.Arches, a)
		}
	}
	return w, nil
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9._-]+$`)

// Buildbot is what the master configuration builds and where.
type Buildbot struct {
	Variants []matrix.Variant
	Workers  []Worker
	// EIB is the eib executable on the workers; MasterEIB the one on
	// the master (runs eib report).
	EIB, MasterEIB string
	// LocalDir and Matrix are the localdir and the matrix file on the
	// workers ("" for none and for the default).
	LocalDir, Matrix string
	// Published is where releases are published (a directory on the
	// workers or a URL): a variant whose plan hash is published is not
	// built again. "": every variant is built every run.
	Published string
	// Results is the directory on the master that each run's results
	// go to (<Results>/<run>/<variant>/), relative to the master's
	// base directory or absolute.
	Results string
	// PBPort is the port workers and `buildbot sendchange` connect to;
	// PBInterface the address it listens on ("": every address).
	PBPort      int
	PBInterface string
	// Nightly is the time of the nightly run, "HH:MM" ("": none).
	Nightly string
}

// Check names the first invalid setting.
func (c Buildbot) Check() error {
	if len(c.Variants) == 0 {
		return fmt.Errorf("no variant to build")
	}
	if len(c.Workers) == 0 {
		return fmt.Errorf("no worker: give --worker NAME at least once")
	}
	seen := map[string]bool{}
	for _, w := range c.Workers {
		if seen[w.Name] {
			return fmt.Errorf("worker %s given twice", w.Name)
		}
		seen[w.Name] = true
	}
	for _, v := range c.Variants {
		if len(c.workersFor(v)) == 0 {
			return fmt.Errorf("variant %s: no worker builds arch %s", v.Name(), v.Arch)
		}
	}
	if c.PBPort <= 0 || c.PBPort > 65535 {
		return fmt.Errorf("PB port %d: not a TCP port", c.PBPort)
	}
	if c.Nightly != "" && !regexp.MustCompile(`^([01][0-9]|2[0-3]):[0-5][0-9]$`).MatchString(c.Nightly) {
		return fmt.Errorf("nightly time %q: not HH:MM", c.Nightly)
	}
	if c.EIB == "" || c.MasterEIB == "" || c.Results == "" {
		return fmt.Errorf("the eib executables and the results directory must be set")
	}
	return nil
}

func (c Buildbot) workersFor(v matrix.Variant) []string {
	var out []string
	for _, w := range c.Workers {
		if len(w.Arches) == 0 || contains(w.Arches, v.Arch) {
			out = append(out, w.Name)
		}
	}
	return out
}

func contains(l []string, s string) bool {
	for _, v := range l {
		if v == s {
			return true
		}
	}
	return false
}

type bbVariant struct {
	Name    string   `json:"name"`
	Arch    string   `json:"arch"`
	Workers []string `json:"workers"`
}

type bbData struct {
	Variants    []bbVariant `json:"variants"`
	Workers     []string    `json:"workers"`
	EIB         string      `json:"eib"`
	MasterEIB   string      `json:"master_eib"`
	LocalDir    string      `json:"localdir"`
	Matrix      string      `json:"matrix"`
	Published   string      `json:"published"`
	Results     string      `json:"results"`
	PBPort      int         `json:"pb_port"`
	PBInterface string      `json:"pb_interface"`
	Hour        int         `json:"hour"`
	Minute      int         `json:"minute"`
	Nightly     bool        `json:"nightly"`
}

// MasterConfig is the text of master.cfg for Buildbot 3.7 (Debian 12's
// buildbot package): one builder per variant, "eib-<variant>", each build
// running `eib farm run` on a worker that builds its arch and uploading
// its results (result.json, manifest.json, build.log) to the master; one
// builder "eib-run" that triggers every variant builder, waits, and runs
// `eib report` on the master over the run's results. See the comments of
// the text for the rules (worker lock, no request merging, isolation).
func (c Buildbot) MasterConfig() (string, error) {
	if err := c.Check(); err != nil {
		return "", err
	}
	d := bbData{EIB: c.EIB, MasterEIB: c.MasterEIB, LocalDir: c.LocalDir, Matrix: c.Matrix, Published: c.Published,
		Results: c.Results, PBPort: c.PBPort, PBInterface: c.PBInterface, Workers: []string{}}
	for _, w := range c.Workers {
		d.Workers = append(d.Workers, w.Name)
	}
	sort.Strings(d.Workers)
	for _, v := range c.Variants {
		d.Variants = append(d.Variants, bbVariant{Name: v.Name(), Arch: v.Arch, Workers: c.workersFor(v)})
	}
	if c.Nightly != "" {
		d.Nightly = true
		fmt.Sscanf(c.Nightly, "%d:%d", &d.Hour, &d.Minute)
	}
	js, err := json.MarshalIndent(d, "", "  ")
	if err != nil {
		return "", err
	}
	// A JSON string is a valid Python string literal.
	lit, err := json.Marshal(string(js))
	if err != nil {
		return "", err
	}
	var b bytes.Buffer
	err = masterTemplate.Execute(&b, map[string]any{"Config": string(lit), "Pretty": commentLines(string(js))})
	return b.String(), err
}

func commentLines(s string) string {
	var b strings.Builder
	for _, l := range strings.Split(s, "\n") {
		b.WriteString("# " + l + "\n")
	}
	return b.String()
}

var masterTemplate = template.Must(template.New("master.cfg").Parse(`# -*- python -*-
# Buildbot 3.7 master configuration written by "eib farm buildbot": the
# variant matrix of eib, one builder per variant. Write it again rather
# than editing it; what it builds:
#
{{.Pretty}}#
# Secrets are not in this file: workers.passwd next to it holds one
# "NAME PASSWORD" line per worker, and one "change PASSWORD" line for
# "buildbot sendchange" (which starts a run: --property run:NAME names it).
import json
import os
import time

from buildbot.plugins import changes, schedulers, steps, util, worker

CONFIG = json.loads({{.Config}})

c = BuildmasterConfig = {}
c['title'] = 'eib variant matrix'
c['buildbotNetUsageData'] = None


def _passwords():
    path = os.path.join(basedir, 'workers.passwd')
    out = {}
    with open(path) as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line or line.startswith('#'):
                continue
            parts = line.split()
            if len(parts) != 2:
                raise ValueError('%s:%d: want "NAME PASSWORD"' % (path, n))
            out[parts[0]] = parts[1]
    for name in CONFIG['workers'] + ['change']:
        if name not in out:
            raise ValueError('%s: no password for %s' % (path, name))
    return out


PASSWORDS = _passwords()

# One worker per build host. eib takes a lock of its own (one build per
# host); the worker lock below keeps Buildbot from starting a second eib
# build on a worker that is building, where it would wait for that lock.
c['workers'] = [worker.Worker(name, PASSWORDS[name]) for name in CONFIG['workers']]
port = 'tcp:%d' % CONFIG['pb_port']
if CONFIG['pb_interface']:
    port += ':interface=' + CONFIG['pb_interface']
c['protocols'] = {'pb': {'port': port}}
c['change_source'] = [changes.PBChangeSource(user='change', passwd=PASSWORDS['change'])]

# Never merge build requests: with Buildbot's default a pending request
# of a builder is merged into another one and that build never happens.
c['collapseRequests'] = False

BUILD_LOCK = util.WorkerLock('eib-build', maxCount=1)
VARIANT_BUILDERS = ['eib-' + v['name'] for v in CONFIG['variants']]


def worker_is_free(builder, wfb, request):
    # The lock alone does not keep builds apart: Buildbot checks it when
    # it picks a worker but takes it only once the build runs, so one pass
    # of its request distributor would start every pending variant on the
    # same free worker, all but one waiting there for the lock while the
    # other workers idle. A worker that runs a variant build takes no
    # other one.
    for other in wfb.worker.workerforbuilders.values():
        if other is not wfb and other.builder_name in VARIANT_BUILDERS and other.isBusy():
            return False
    return True


RESULTS = CONFIG['results']
if not os.path.isabs(RESULTS):
    RESULTS = os.path.join(basedir, RESULTS)


@util.renderer
def run_name(props):
    run = props.getProperty('run')
    if run:
        return str(run)
    return time.strftime('%Y%m%d-%H%M%S', time.gmtime())


def variant_factory(v):
    f = util.BuildFactory()
    command = [CONFIG['eib'], 'farm', 'run', '--variant', v['name'], '--results', 'results',
               '--worker', util.Property('workername')]
    if CONFIG['localdir']:
        command += ['--localdir', CONFIG['localdir']]
    if CONFIG['matrix']:
        command += ['--matrix', CONFIG['matrix']]
    if CONFIG['published']:
        command += ['--published', CONFIG['published']]
    # The build: its failure fails this build only (every variant is
    # a build of its own builder).
    f.addStep(steps.ShellCommand(name='eib', command=command, haltOnFailure=False,
                                 flunkOnFailure=True, timeout=6 * 3600))
    # Its result, manifest and log go to the master, whatever happened.
    f.addStep(steps.DirectoryUpload(
        name='upload results', workersrc='results', alwaysRun=True,
        masterdest=util.Interpolate(RESULTS + '/%(prop:run:-manual)s/' + v['name'])))
    return f


c['builders'] = []
for v in CONFIG['variants']:
    c['builders'].append(util.BuilderConfig(
        name='eib-' + v['name'], workernames=v['workers'], factory=variant_factory(v),
        locks=[BUILD_LOCK.access('exclusive')], canStartBuild=worker_is_free, collapseRequests=False,
        tags=['eib', v['arch']]))

# One run: trigger every variant, wait for all of them (a failure does
# not stop the others), then the report of the run on the master.
run = util.BuildFactory()
run.addStep(steps.SetProperty(name='run name', property='run', value=run_name))
run.addStep(steps.Trigger(name='variants', schedulerNames=['eib-variants'], waitForFinish=True,
                          haltOnFailure=False, flunkOnFailure=True,
                          set_properties={'run': util.Property('run')}))
run.addStep(steps.MasterShellCommand(
    name='report', alwaysRun=True,
    command=[CONFIG['master_eib'], 'report', '--html',
             util.Interpolate(RESULTS + '/%(prop:run)s/index.html'),
             util.Interpolate(RESULTS + '/%(prop:run)s')]))
# The run only waits: it is not an eib build and takes no worker lock.
c['builders'].append(util.BuilderConfig(name='eib-run', workernames=CONFIG['workers'],
                                        factory=run, collapseRequests=False, tags=['eib']))

c['schedulers'] = [
    schedulers.Triggerable(name='eib-variants', builderNames=VARIANT_BUILDERS),
    schedulers.AnyBranchScheduler(name='eib-changes', treeStableTimer=None, builderNames=['eib-run']),
    schedulers.ForceScheduler(name='eib-force', builderNames=['eib-run'] + VARIANT_BUILDERS),
]
if CONFIG['nightly']:
    c['schedulers'].append(schedulers.Nightly(name='eib-nightly', builderNames=['eib-run'],
                                              hour=CONFIG['hour'], minute=CONFIG['minute']))

c['db'] = {'db_url': 'sqlite:///state.sqlite'}
`))
