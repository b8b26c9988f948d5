package publish

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
)

// s3Server is an S3-compatible server (gofakes3, in memory) on 127.0.0.1.
type s3Server struct {
	url     string
	backend *s3mem.Backend
}

func startS3(t *testing.T, buckets ...string) *s3Server {
	t.Helper()
	return startS3With(t, nil, buckets...)
}

// startS3With is startS3 with options for the in-memory backend (a time
// source).
func startS3With(t *testing.T, opts []s3mem.Option, buckets ...string) *s3Server {
	t.Helper()
	// No ~/.aws and no AWS_* variables of the host.
	t.Setenv("HOME", t.TempDir())
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "AWS_") {
			t.Setenv(k, "")
			os.Unsetenv(k)
		}
	}
	backend := s3mem.New(opts...)
	for _, b := range buckets {
		if err := backend.CreateBucket(b); err != nil {
			t.Fatal(err)
		}
	}
	srv := httptest.NewServer(gofakes3.New(backend, gofakes3.WithLogger(gofakes3.DiscardLog())).Server())
	t.Cleanup(srv.Close)
	return &s3Server{url: srv.URL, backend: backend}
}

// env configures the S3 destination for this server, with credentials in a shared
// credentials file (as [publish] aws_credentials holds them).
func (s *s3Server) env(t *testing.T, bucket, prefix string) []string {
	creds := filepath.Join(t.TempDir(), "aws-credentials")
	if err := os.WriteFile(creds, []byte("[default]\naws_access_key_id = EIBTESTKEY\naws_secret_access_key = eib-test-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return []string{
		"EIB_PUBLISH_S3_BUCKET=" + bucket,
		"EIB_PUBLISH_S3_PREFIX=" + prefix,
		"EIB_PUBLISH_S3_ENDPOINT=" + s.url,
		"EIB_PUBLISH_S3_REGION=us-east-1",
		"EIB_PUBLISH_AWS_CREDENTIALS=" + creds,
	}
}

// objects returns every key of bucket under prefix with its content.
func (s *s3Server) objects(t *testing.T, bucket, prefix string) map[string][]byte {
	t.Helper()
	list, err := s.backend.ListBucket(bucket, &gofakes3.Prefix{Prefix: prefix, HasPrefix: prefix != ""}, gofakes3.ListBucketPage{})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	for _, c := range list.Contents {
		obj, err := s.backend.GetObject(bucket, c.Key, nil)
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(obj.Contents)
		obj.Contents.Close()
		if err != nil {
			t.Fatal(err)
		}
		out[c.Key] = data
	}
	return out
}

func keys(m map[string][]byte) []string {
	var k []string
	for key := range m {
		k = append(k, key)
	}
	sort.Strings(k)
	return k
}

// TestS3PublishStagesVerifiesThenCopies publishes over what an interrupted
// run leaves (a stale staging object), then reruns.
func TestS3PublishStagesVerifiesThenCopies(t *testing.T) {
	srv := startS3(t, "images")
	r := makeRelease(t, 1<<20)
	// The image and SHA256SUMS.
	for _, name := range []string{r.ov + ".img.zst.sha256", r.ov + ".manifest.json"} {
		if err := os.Remove(filepath.Join(r.outdir, name)); err != nil {
			t.Fatal(err)
		}
	}
	r.writeSums(t)
	stale := "eos/" + r.ov + ".inprogress/stale"
	if _, err := srv.backend.PutObject("images", stale, nil, strings.NewReader("x"), 1, nil); err != nil {
		t.Fatal(err)
	}
	env := r.env(t, srv.env(t, "images", "/eos/")...)
	out, err := runPublish(t, env)
	if err != nil {
		t.Fatalf("publish to S3: %v\n%s", err, out)
	}
	objs := srv.objects(t, "images", "")
	if len(objs) != len(r.files) {
		t.Errorf("bucket holds %v, want the %d files of the release and no staging object", keys(objs), len(r.files))
	}
	for name, want := range r.files {
		got, ok := objs["eos/"+r.ov+"/"+name]
		if !ok {
			t.Errorf("eos/%s/%s is missing", r.ov, name)
			continue
		}
		if !bytes.Equal(got, want) {
			t.Errorf("eos/%s/%s differs from outdir", r.ov, name)
		}
	}
	// The sha256 metadata survives the server-side copy.
	obj, err := srv.backend.HeadObject("images", "eos/"+r.ov+"/"+r.ov+".img.zst")
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(r.files[r.ov+".img.zst"])
	if got := metadata(obj.Metadata, "sha256"); got != hex.EncodeToString(sum[:]) {
		t.Errorf("object metadata sha256 = %q, want %x (metadata %v)", got, sum, obj.Metadata)
	}

	out, err = runPublish(t, env)
	if err != nil || !strings.Contains(out, "already published") {
		t.Errorf("rerun: err %v, want \"already published\":\n%s", err, out)
	}
}

func metadata(m map[string]string, key string) string {
	for k, v := range m {
		if strings.EqualFold(k, key) || strings.EqualFold(k, "x-amz-meta-"+key) {
			return v
		}
	}
	return ""
}

func TestS3MissingBucketFailsWithoutPublishing(t *testing.T) {
	srv := startS3(t, "images")
	r := makeRelease(t, 1024)
	out, err := runPublish(t, r.env(t, srv.env(t, "no-such-bucket", "")...))
	if err == nil {
		t.Fatalf("publishing to a missing bucket succeeded:\n%s", out)
	}
	if !strings.Contains(out, "s3_bucket = no-such-bucket: cannot reach the bucket") {
		t.Errorf("the error does not say what is wrong:\n%s", out)
	}
}
