package watch

import (
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"
)

// durationBuckets are the upper bounds (seconds) of the analysis duration
// histogram.
var durationBuckets = []float64{0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120}

// Metrics are the watcher's in-memory counters and gauges.
type Metrics struct {
	queue, busy       atomic.Int64
	queueFull         atomic.Int64
	failures          atomic.Int64
	recorded          atomic.Int64
	groups            atomic.Int64
	regressions       atomic.Int64
	incidents         atomic.Int64
	others            atomic.Int64
	deleted           atomic.Int64
	deletedUnanalysed atomic.Int64
	alertsFailed      atomic.Int64
	coresOnDisk       atomic.Int64
	coreBytes         atomic.Int64
	dbErrors          atomic.Int64
	spooled           atomic.Int64
	replayed          atomic.Int64
	spoolDropped      atomic.Int64
	spoolDamaged      atomic.Int64
	// spool reports the records and bytes waiting in the spool and the
	// damaged regions it skipped (nil: no spool).
	spool func() (records int, bytes int64, damaged int64)
	// childFailures counts analysis processes that died; quarantined
	// reports the cores quarantined (nil: no isolation).
	childFailures atomic.Int64
	quarantined   func() int

	mu      sync.Mutex
	buckets []uint64
	count   uint64
	sum     float64
}

func newMetrics() *Metrics { return &Metrics{buckets: make([]uint64, len(durationBuckets))} }

func (m *Metrics) observe(d time.Duration) {
	s := d.Seconds()
	m.mu.Lock()
	defer m.mu.Unlock()
	for i, b := range durationBuckets {
		if s <= b {
			m.buckets[i]++
		}
	}
	m.count++
	m.sum += s
}

// QueueLength is the number of cores waiting for analysis.
func (m *Metrics) QueueLength() int64 { return m.queue.Load() }

// WritePrometheus writes the metrics in the Prometheus text format.
func (m *Metrics) WritePrometheus(w io.Writer) {
	g := func(name, help, typ string, v int64) {
		fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s %s\n%s %d\n", name, help, name, typ, name, v)
	}
	g("coroner_analysis_queue_length", "Cores waiting for analysis.", "gauge", m.queue.Load())
	g("coroner_analyses_running", "Analyses in progress.", "gauge", m.busy.Load())
	g("coroner_analysis_queue_full_total", "Times a core found the queue full (it is retried).", "counter", m.queueFull.Load())
	g("coroner_analysis_failures_total", "Cores whose analysis failed.", "counter", m.failures.Load())
	g("coroner_recorded_crashes_total", "Crashes recorded by this process.", "counter", m.recorded.Load())
	g("coroner_new_groups_total", "New crash groups seen by this process.", "counter", m.groups.Load())
	g("coroner_regressed_groups_total", "Crashes recorded by this process that reopened a resolved crash group.", "counter", m.regressions.Load())
	g("coroner_log_incidents_total", "Incidents read from the logs by this process.", "counter", m.incidents.Load())
	g("coroner_other_process_crashes_total", "Cores of processes that are not PHP, analysed but not recorded (watch --all-processes records them).", "counter", m.others.Load())
	g("coroner_cores_deleted_total", "Cores deleted by the retention policy.", "counter", m.deleted.Load())
	g("coroner_cores_deleted_unanalysed_total", "Cores deleted by retention before they were analysed.", "counter", m.deletedUnanalysed.Load())
	g("coroner_alert_failures_total", "Alert hooks that failed.", "counter", m.alertsFailed.Load())
	g("coroner_cores_on_disk", "Cores in the managed core directories.", "gauge", m.coresOnDisk.Load())
	g("coroner_cores_on_disk_bytes", "Bytes of the cores in the managed core directories.", "gauge", m.coreBytes.Load())
	g("coroner_database_errors_total", "Database operations that failed because the database was unavailable.", "counter", m.dbErrors.Load())
	g("coroner_analysis_process_failures_total", "Analysis processes that died (out of memory, killed) instead of ending with a report.", "counter", m.childFailures.Load())
	q := 0
	if m.quarantined != nil {
		q = m.quarantined()
	}
	g("coroner_cores_quarantined", "Cores not analysed any more: their analysis made the analysis process die repeatedly.", "gauge", int64(q))
	var records int
	var bytes, damaged int64
	if m.spool != nil {
		records, bytes, damaged = m.spool()
	}
	g("coroner_spool_records", "Crashes and incidents waiting in the spool for the database.", "gauge", int64(records))
	g("coroner_spool_bytes", "Bytes waiting in the spool.", "gauge", bytes)
	g("coroner_spooled_total", "Crashes and incidents written to the spool while the database was unavailable.", "counter", m.spooled.Load())
	g("coroner_spool_replayed_total", "Spooled records written to the database.", "counter", m.replayed.Load())
	g("coroner_spool_dropped_total", "Records lost: the spool was full or failed, or the database refused a spooled record.", "counter", m.spoolDropped.Load())
	g("coroner_spool_damaged_total", "Damaged spool regions and undecodable records skipped.", "counter", damaged+m.spoolDamaged.Load())
	m.mu.Lock()
	defer m.mu.Unlock()
	const h = "coroner_analysis_duration_seconds"
	fmt.Fprintf(w, "# HELP %s Time to analyse one core.\n# TYPE %s histogram\n", h, h)
	for i, b := range durationBuckets {
		fmt.Fprintf(w, "%s_bucket{le=\"%g\"} %d\n", h, b, m.buckets[i])
	}
	fmt.Fprintf(w, "%s_bucket{le=\"+Inf\"} %d\n%s_sum %g\n%s_count %d\n", h, m.count, h, m.sum, h, m.count)
}
