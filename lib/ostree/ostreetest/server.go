package ostreetest

import (
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
)

// Server serves a repository directory over HTTP on 127.0.0.1, counts the
// requests of every path and can answer some with an error status.
type Server struct {
	URL string // with a trailing slash

	mu     sync.Mutex
	counts map[string]int
	fault  func(path string, n int) int
}

// ServeCounting publishes dir like Serve until the test ends, counting
// requests.
func ServeCounting(t testing.TB, dir string) *Server {
	t.Helper()
	s := &Server{counts: map[string]int{}}
	files := http.FileServer(http.Dir(dir))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.counts[r.URL.Path]++
		n, fault := s.counts[r.URL.Path], s.fault
		s.mu.Unlock()
		if fault != nil {
			if code := fault(r.URL.Path, n); code != 0 {
				http.Error(w, http.StatusText(code), code)
				return
			}
		}
		files.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	s.URL = srv.URL + "/"
	return s
}

// Fault makes the server answer a request of path, its nth (from 1), with
// the status f returns (0 = serve the file). The server calls f under its
// lock: f may read Requests of other paths only through the n it is
// given, not call the server.
func (s *Server) Fault(f func(path string, n int) int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fault = f
}

// Requests is how many requests of path ("/objects/xx/yyy.filez") the
// server has had.
func (s *Server) Requests(path string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.counts[path]
}
