// Package report summarizes one run of the variant matrix: the results
// each variant's build left on the master (<run>/<variant>/result.json,
// manifest.json, build.log; package farm), as a text table and an HTML
// page.
package report

import (
	"fmt"
	"html/template"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/eib-builder/eib/lib/farm"
)

// Row is one variant of the report.
type Row struct {
	farm.Result
	// Log is the path of its build log relative to the run directory
	// ("" when there is none); Manifest likewise.
	Log, Manifest string
}

// Report is one run.
type Report struct {
	Dir  string
	Rows []Row // sorted by variant
}

// Read reads every <dir>/<variant>/result.json. A variant directory
// without one (its build never got to write it) is a row with result
// "failed" and the reason. No variant directory at all is an error.
func Read(dir string) (*Report, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("report: %w", err)
	}
	r := &Report{Dir: dir}
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		vdir := filepath.Join(dir, e.Name())
		res, err := farm.ReadResult(vdir)
		if err != nil {
			res = farm.Result{Variant: e.Name(), Result: farm.ResultFailed, Reason: "no result: " + err.Error()}
		}
		row := Row{Result: res}
		if _, err := os.Stat(filepath.Join(vdir, farm.LogFile)); err == nil {
			row.Log = e.Name() + "/" + farm.LogFile
		}
		if _, err := os.Stat(filepath.Join(vdir, farm.ManifestFile)); err == nil {
			row.Manifest = e.Name() + "/" + farm.ManifestFile
		}
		r.Rows = append(r.Rows, row)
	}
	if len(r.Rows) == 0 {
		return nil, fmt.Errorf("report: %s has no variant results", dir)
	}
	sort.Slice(r.Rows, func(i, j int) bool { return r.Rows[i].Variant < r.Rows[j].Variant })
	return r, nil
}

// Failed names the variants that failed.
func (r *Report) Failed() []string {
	var out []string
	for _, row := range r.Rows {
		if row.Result.Result != farm.ResultOK && row.Result.Result != farm.ResultSkipped {
			out = append(out, row.Variant)
		}
	}
	return out
}

// Size formats a byte count in MiB ("-" for 0).
func Size(n int64) string {
	if n <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
}

func seconds(s float64) string {
	return (time.Duration(s*10) * time.Second / 10).String()
}

// WriteText writes the table: VARIANT RESULT WORKER TIME IMAGE LOG.
func (r *Report) WriteText(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "VARIANT\tRESULT\tWORKER\tTIME\tIMAGE SIZE\tLOG")
	for _, row := range r.Rows {
		log := row.Log
		if log == "" {
			log = "-"
		}
		worker := row.Worker
		if worker == "" {
			worker = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", row.Variant, row.Result.Result, worker, seconds(row.Seconds), Size(row.ImageSize), log)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if f := r.Failed(); len(f) > 0 {
		_, err := fmt.Fprintf(w, "%d of %d variants failed: %s\n", len(f), len(r.Rows), strings.Join(f, ", "))
		return err
	}
	_, err := fmt.Fprintf(w, "all %d variants ok\n", len(r.Rows))
	return err
}

var page = template.Must(template.New("report").Funcs(template.FuncMap{"size": Size, "seconds": seconds}).Parse(`<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>eib run {{.Name}}</title>
<style>body{font-family:sans-serif}td,th{padding:2px 8px;text-align:left}.failed{background:#fcc}.ok{background:#cfc}.skipped{background:#eee}</style>
</head><body>
<h1>eib run {{.Name}}</h1>
<p>{{len .Rows}} variants{{with .Failed}}, {{len .}} failed{{end}}.</p>
<table>
<tr><th>Variant</th><th>Result</th><th>Worker</th><th>Time</th><th>Image size</th><th>Log</th><th>Manifest</th></tr>
{{range .Rows}}<tr class="{{.Result.Result}}"><td>{{.Variant}}</td><td>{{.Result.Result}}{{with .Reason}} ({{.}}){{end}}</td><td>{{.Worker}}</td><td>{{seconds .Seconds}}</td><td>{{size .ImageSize}}</td><td>{{with .Log}}<a href="{{.}}">build.log</a>{{end}}</td><td>{{with .Manifest}}<a href="{{.}}">manifest.json</a>{{end}}</td></tr>
{{end}}</table>
</body></html>
`))

// WriteHTML writes the page; its links are relative to the run directory.
func (r *Report) WriteHTML(w io.Writer) error {
	return page.Execute(w, map[string]any{"Name": filepath.Base(r.Dir), "Rows": r.Rows, "Failed": r.Failed()})
}
