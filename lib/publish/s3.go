package publish

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// S3 publishes to Bucket under Prefix/<outversion>/ with the AWS SDK for
// Go v2 (the official client: shared credentials files, regions and
// custom endpoints handled as the AWS CLI does). S3 has no rename: every
// file is uploaded under Prefix/<outversion>.inprogress/ with its sha256
// as metadata (and, up to partMax bytes, as an S3 SHA-256 checksum the
// server verifies on arrival), each object's size and sha256 are checked
// on the server, then the objects are copied server-side to
// Prefix/<outversion>/ with SHA256SUMS last, and the staging objects are
// removed. A release is complete when its SHA256SUMS exists.
type S3 struct {
	Bucket, Prefix, Endpoint, Region string
	Credentials                      string // shared credentials file, used when it exists
	Logf                             func(format string, args ...any)
}

// partMax is the largest object one PutObject or CopyObject may make;
// larger files go through multipart uploads and copies of partSize.
const (
	partMax  = 5 << 30
	partSize = 256 << 20
)

func newS3(s Settings) *S3 {
	return &S3{Bucket: s.S3Bucket, Prefix: strings.Trim(s.S3Prefix, "/"), Endpoint: s.S3Endpoint,
		Region: s.S3Region, Credentials: s.AWSCredentials, Logf: s.Logf}
}

func (d *S3) String() string {
	if d.Prefix == "" {
		return "s3://" + d.Bucket
	}
	return "s3://" + d.Bucket + "/" + d.Prefix
}

func (d *S3) key(parts ...string) string {
	if d.Prefix == "" {
		return strings.Join(parts, "")
	}
	return d.Prefix + "/" + strings.Join(parts, "")
}

func (d *S3) client(ctx context.Context) (*s3.Client, error) {
	var opts []func(*config.LoadOptions) error
	if d.Credentials != "" {
		if _, err := os.Stat(d.Credentials); err == nil {
			opts = append(opts, config.WithSharedCredentialsFiles([]string{d.Credentials}))
		}
	}
	if d.Region != "" {
		opts = append(opts, config.WithRegion(d.Region))
	}
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("[publish] s3_bucket = %s: AWS configuration: %w", d.Bucket, err)
	}
	if cfg.Region == "" {
		cfg.Region = "us-east-1"
	}
	return s3.NewFromConfig(cfg, func(o *s3.Options) {
		if d.Endpoint != "" {
			o.BaseEndpoint = aws.String(d.Endpoint)
			o.UsePathStyle = true
		}
	}), nil
}

// reach checks the bucket before anything is written.
func (d *S3) reach(ctx context.Context, c *s3.Client) error {
	if _, err := c.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: &d.Bucket}); err != nil {
		at := ""
		if d.Endpoint != "" {
			at = " at " + d.Endpoint
		}
		return fmt.Errorf("[publish] s3_bucket = %s: cannot reach the bucket%s: %w", d.Bucket, at, err)
	}
	return nil
}

func b64(hexSum string) string {
	raw, _ := hex.DecodeString(hexSum)
	return base64.StdEncoding.EncodeToString(raw)
}

// Publish stages, verifies, then copies the release (see S3).
func (d *S3) Publish(ctx context.Context, dir, outversion string) error {
	files, err := release(dir)
	if err != nil {
		return err
	}
	c, err := d.client(ctx)
	if err != nil {
		return err
	}
	if err := d.reach(ctx, c); err != nil {
		return err
	}
	final := d.key(outversion, "/")
	staging := d.key(outversion, ".inprogress/")
	sizes := map[string]int64{}
	for _, f := range files {
		st, err := os.Stat(filepath.Join(dir, f.Name))
		if err != nil {
			return err
		}
		sizes[f.Name] = st.Size()
	}
	sums := files[len(files)-1]
	head, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &d.Bucket, Key: aws.String(final + SumsFile)})
	if err == nil {
		if aws.ToInt64(head.ContentLength) == sizes[SumsFile] && metaSHA256(head.Metadata) == sums.SHA256 {
			d.Logf("s3://%s/%s is already published", d.Bucket, final)
			return nil
		}
		return fmt.Errorf("s3://%s/%s exists and differs from this build; not replacing a published release", d.Bucket, final)
	} else if !notFound(err) {
		return fmt.Errorf("s3://%s/%s%s: %w", d.Bucket, final, SumsFile, err)
	}

	// What an interrupted run left under the staging prefix goes first.
	if err := d.removePrefix(ctx, c, staging); err != nil {
		return err
	}
	if err := d.removeStaleS3(ctx, c, outversion, time.Now()); err != nil {
		return err
	}
	for _, f := range files {
		if err := d.upload(ctx, c, filepath.Join(dir, f.Name), staging+f.Name, f.SHA256, sizes[f.Name]); err != nil {
			return fmt.Errorf("uploading %s to s3://%s/%s: %w", f.Name, d.Bucket, staging+f.Name, err)
		}
	}
	for _, f := range files {
		if err := d.verify(ctx, c, staging+f.Name, f.SHA256, sizes[f.Name]); err != nil {
			return err
		}
	}
	// Visible: server-side copies, SHA256SUMS last (release lists it last).
	for _, f := range files {
		if err := d.copy(ctx, c, staging+f.Name, final+f.Name, f.SHA256, sizes[f.Name]); err != nil {
			return fmt.Errorf("copying s3://%s/%s to %s: %w", d.Bucket, staging+f.Name, final+f.Name, err)
		}
	}
	got, err := d.list(ctx, c, final)
	if err != nil {
		return err
	}
	var want []string
	for _, f := range files {
		want = append(want, fmt.Sprintf("%s %d", final+f.Name, sizes[f.Name]))
	}
	sort.Strings(want)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		return fmt.Errorf("s3://%s/%s holds other objects or sizes than this build:\n%s\nwant:\n%s", d.Bucket, final,
			strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if err := d.removePrefix(ctx, c, staging); err != nil {
		return err
	}
	d.Logf("published s3://%s/%s", d.Bucket, final)
	return nil
}

func notFound(err error) bool {
	var nf *types.NotFound
	var nk *types.NoSuchKey
	return errors.As(err, &nf) || errors.As(err, &nk)
}

// metaSHA256 is the sha256 metadata (some servers capitalize names).
func metaSHA256(m map[string]string) string {
	for k, v := range m {
		if strings.EqualFold(k, "sha256") {
			return v
		}
	}
	return ""
}

// upload puts one file with its sha256 as metadata: one PutObject with an
// S3 SHA-256 checksum up to partMax bytes, a multipart upload beyond.
func (d *S3) upload(ctx context.Context, c *s3.Client, path, key, sum string, size int64) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	meta := map[string]string{"sha256": sum}
	if size <= partMax {
		_, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: &d.Bucket, Key: &key, Body: f, ContentLength: aws.Int64(size),
			ChecksumSHA256: aws.String(b64(sum)), Metadata: meta})
		return err
	}
	mp, err := c.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: &d.Bucket, Key: &key, Metadata: meta})
	if err != nil {
		return err
	}
	var parts []types.CompletedPart
	for n, off := int32(1), int64(0); off < size; n, off = n+1, off+partSize {
		l := min(partSize, size-off)
		out, err := c.UploadPart(ctx, &s3.UploadPartInput{Bucket: &d.Bucket, Key: &key, UploadId: mp.UploadId,
			PartNumber: aws.Int32(n), Body: io.NewSectionReader(f, off, l), ContentLength: aws.Int64(l)})
		if err != nil {
			c.AbortMultipartUpload(context.WithoutCancel(ctx), &s3.AbortMultipartUploadInput{Bucket: &d.Bucket, Key: &key, UploadId: mp.UploadId})
			return err
		}
		parts = append(parts, types.CompletedPart{ETag: out.ETag, PartNumber: aws.Int32(n)})
	}
	_, err = c.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{Bucket: &d.Bucket, Key: &key, UploadId: mp.UploadId,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: parts}})
	return err
}

// verify checks the object's size and sha256 metadata as the server
// reports them, and the server's SHA-256 of the whole object when it
// reports one.
func (d *S3) verify(ctx context.Context, c *s3.Client, key, sum string, size int64) error {
	h, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &d.Bucket, Key: &key, ChecksumMode: types.ChecksumModeEnabled})
	if err != nil {
		return fmt.Errorf("s3://%s/%s is missing after the upload: %w", d.Bucket, key, err)
	}
	got := fmt.Sprintf("%d %s", aws.ToInt64(h.ContentLength), metaSHA256(h.Metadata))
	want := fmt.Sprintf("%d %s", size, sum)
	if cs := aws.ToString(h.ChecksumSHA256); size <= partMax && cs != "" {
		got += " " + cs
		want += " " + b64(sum)
	}
	if got != want {
		return fmt.Errorf("s3://%s/%s: the server has size, sha256 and checksum %q, want %q", d.Bucket, key, got, want)
	}
	return nil
}

// copy copies an object server-side, keeping its metadata; a server that
// reports the copy's SHA-256 must report ours.
func (d *S3) copy(ctx context.Context, c *s3.Client, from, to, sum string, size int64) error {
	src := d.Bucket + "/" + from
	if size <= partMax {
		out, err := c.CopyObject(ctx, &s3.CopyObjectInput{Bucket: &d.Bucket, Key: &to, CopySource: &src,
			ChecksumAlgorithm: types.ChecksumAlgorithmSha256})
		if err != nil {
			return err
		}
		if out.CopyObjectResult != nil {
			if cs := aws.ToString(out.CopyObjectResult.ChecksumSHA256); cs != "" && cs != b64(sum) {
				return fmt.Errorf("the server's SHA-256 of the copy is %s, want %s", cs, b64(sum))
			}
		}
		return nil
	}
	mp, err := c.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: &d.Bucket, Key: &to,
		Metadata: map[string]string{"sha256": sum}})
	if err != nil {
		return err
	}
	var parts []types.CompletedPart
	for n, off := int32(1), int64(0); off < size; n, off = n+1, off+partSize {
		end := min(off+partSize, size) - 1
		out, err := c.UploadPartCopy(ctx, &s3.UploadPartCopyInput{Bucket: &d.Bucket, Key: &to, UploadId: mp.UploadId,
			PartNumber: aws.Int32(n), CopySource: &src, CopySourceRange: aws.String(fmt.Sprintf("bytes=%d-%d", off, end))})
		if err != nil {
			c.AbortMultipartUpload(context.WithoutCancel(ctx), &s3.AbortMultipartUploadInput{Bucket: &d.Bucket, Key: &to, UploadId: mp.UploadId})
			return err
		}
		parts = append(parts, types.CompletedPart{ETag: out.CopyPartResult.ETag, PartNumber: aws.Int32(n)})
	}
	_, err = c.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{Bucket: &d.Bucket, Key: &to, UploadId: mp.UploadId,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: parts}})
	return err
}

// list returns "KEY SIZE" of every object under prefix, sorted.
func (d *S3) list(ctx context.Context, c *s3.Client, prefix string) ([]string, error) {
	var out []string
	p := s3.NewListObjectsV2Paginator(c, &s3.ListObjectsV2Input{Bucket: &d.Bucket, Prefix: &prefix})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("listing s3://%s/%s: %w", d.Bucket, prefix, err)
		}
		for _, o := range page.Contents {
			out = append(out, fmt.Sprintf("%s %d", aws.ToString(o.Key), aws.ToInt64(o.Size)))
		}
	}
	sort.Strings(out)
	return out, nil
}

func (d *S3) removePrefix(ctx context.Context, c *s3.Client, prefix string) error {
	objs, err := d.list(ctx, c, prefix)
	if err != nil {
		return err
	}
	for _, o := range objs {
		key := o[:strings.LastIndexByte(o, ' ')]
		if _, err := c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &d.Bucket, Key: &key}); err != nil {
			return fmt.Errorf("removing s3://%s/%s: %w", d.Bucket, key, err)
		}
	}
	return nil
}

// Put uploads path as Prefix/name (an S3 object appears only when whole).
func (d *S3) Put(ctx context.Context, path, name string) error {
	c, err := d.client(ctx)
	if err != nil {
		return err
	}
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	sum, err := hashFile(path)
	if err != nil {
		return err
	}
	_, err = c.PutObject(ctx, &s3.PutObjectInput{Bucket: &d.Bucket, Key: aws.String(d.key(name)), Body: f,
		ChecksumSHA256: aws.String(b64(sum)), ContentType: aws.String("text/plain; charset=utf-8")})
	if err != nil {
		return fmt.Errorf("copying to s3://%s/%s: %w", d.Bucket, d.key(name), err)
	}
	return nil
}
