package ostree

import (
	"context"
	"strings"
)

// summaryCollectionID is how `ostree remote summary` names the collection
// ID in the summary's metadata.
const summaryCollectionID = "(ostree.summary.collection-id):"

// RemoteCollectionID fetches a remote's summary from its URL and returns
// the collection ID it advertises (ostree.summary.collection-id), "" when
// it has none: what EIB's lib/eibostree.py fetch_remote_collection_id
// reads to configure a deployed remote for P2P updates.
func (r *Repo) RemoteCollectionID(ctx context.Context, remote string) (string, error) {
	out, err := r.remote(ctx, "summary", remote)
	if err != nil {
		return "", err
	}
	return parseSummaryCollectionID(out), nil
}

// parseSummaryCollectionID finds the collection ID line of `ostree remote
// summary` ("Collection ID (ostree.summary.collection-id): org.example.Os").
func parseSummaryCollectionID(summary string) string {
	for _, line := range strings.Split(summary, "\n") {
		if _, v, ok := strings.Cut(line, summaryCollectionID); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}
