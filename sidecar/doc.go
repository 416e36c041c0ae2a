// Package sidecar delivers beacon alerts from the local spool (package
// spool) into Elasticsearch. It is the body of the `beacongrid sidecar`
// daemon.
//
// # Flow
//
// The plugin appends one JSON alert.Alert per line to the spool. The
// sidecar's Deliverer reads batches with spool.Reader.Next, checks each
// line (event.id; beacon.matrix in the string form of alert.Matrix, a
// legacy array of an older plugin rewritten into it) and enriches it
// (Enricher: host.* from an asset inventory, threat.*
// from IOC lists, beacongrid.* first-seen and prevalence from Sightings),
// sends each batch with one gzip-compressed Elasticsearch _bulk request
// (_id = alert event.id; op "index" on a plain index, "create" on a data
// stream), checks every item of the response and, only once every line of
// the batch is either indexed or dead-lettered, commits the spool position
// after the batch's last line. Up to Config.Workers batches are in flight;
// a committer takes them in read order, so a batch is committed only after
// every batch before it.
//
// # Guarantees
//
//   - At least once, without duplicates: a crash between indexing and
//     Commit re-delivers the batch, and because the document id is the
//     deterministic alert.Event.ID and the op is "index", the re-delivery
//     overwrites the same documents instead of adding new ones.
//   - Transient failures never lose or skip alerts: a connection error, a
//     request-level error status, or an item rejected with 429 or any status
//     other than 400 is retried with capped exponential backoff (and jitter),
//     resending only the items that have not succeeded, and nothing is
//     committed meanwhile. The sidecar waits for Elasticsearch rather than
//     dropping alerts; the metrics and logs say why it waits.
//   - A permanent rejection does not block the rest: an item rejected with
//     status 400 (mapping or parse error), and a spool line that is not a
//     JSON object with a non-empty event.id, is appended to the dead-letter
//     file DeadLetterFile in the spool directory (fsynced before the commit)
//     and counted; the batch then commits normally. A crash before the
//     commit can write the same dead letter twice.
//   - Graceful shutdown: when the context passed to Run is cancelled, the
//     batch already read (the in-flight batch) is still sent, an in-flight
//     request is allowed to finish (bounded by Config.RequestTimeout), and
//     the position is committed if the batch succeeded; Run then returns. No
//     new backoff wait starts after cancellation: lines still failing stay
//     uncommitted and are re-delivered at the next start.
//
// # Elasticsearch
//
// At start the sidecar installs the composable index template
// index-template.json (embedded; also the source of docs/alert-schema.md)
// under the index name. With Target auto it uses a data stream, and an ILM
// policy of the same name, when the cluster has those APIs (probed with GET
// _data_stream and PUT _ilm/policy); otherwise, as on Elastic's integ-test
// distribution, it creates a plain index. A data stream's "create" answers
// 409 for a document already in the write index; that counts as delivered.
// A changed template applies to indices created after it, not to an existing
// index.
//
// The delivery logic talks to Elasticsearch only through the Indexer
// interface, so it is tested without a cluster; ESIndexer is the
// implementation on go-elasticsearch/v8. It calls the _bulk API directly
// rather than through esutil.BulkIndexer, because commit-after-success needs
// to know exactly which spool lines one request carried, and BulkIndexer
// flushes on its own schedule.
//
// # Operations
//
// Handler (served by StartServer) exposes /metrics (Prometheus), /healthz
// (the process runs) and /readyz (the index template is installed and the
// last request to Elasticsearch succeeded). WebHandler serves the alerts
// page under /ui/ (only with a token; the alerts API requires it as a
// bearer token). The Reloader reloads the IOC lists and the inventory when
// their files change. Logs are structured (log/slog). Secrets (API key,
// password) never reach a log line: Config redacts them in String and
// LogValue, and addresses with embedded credentials are refused.
package sidecar
