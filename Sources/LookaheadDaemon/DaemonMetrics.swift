import CoreMetrics
import Prometheus
import StepBatcher
import Synchronization

/// The daemon's metrics: recorded through swift-metrics into this daemon's own Prometheus
/// registry (swift-prometheus renders the text, escaping every label), served by the `metrics`
/// method and `GET /metrics`. Per-request figures are recorded as requests end
/// (`RequestMetrics`, handed to the batcher); the engine's running totals and the gauges are read
/// from the batcher's status when a scraper asks. docs/protocol.md lists every name.
public final class DaemonMetrics: Sendable {
    private let registry = PrometheusCollectorRegistry()
    private let factory: PrometheusMetricsFactory
    /// The engine totals already added to their counters: a scrape adds what has grown since.
    private let counted = Mutex(SchedulerFigures())

    public init() {
        var factory = PrometheusMetricsFactory(registry: registry)
        // From a 20 ms first token on a GPU to the minutes of a long answer on two cores.
        let seconds: [Double] = [0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600]
        let buckets = seconds.map { Duration.milliseconds(Int64($0 * 1000)) }
        factory.durationHistogramBuckets = ["lookaheadd_e2e_request_latency_seconds": buckets,
                                            "lookaheadd_time_to_first_token_seconds": buckets]
        self.factory = factory
    }

    /// For the batcher: what each request records as it ends.
    public var requests: RequestMetrics { RequestMetrics(factory: factory) }

    /// A request's end on either surface, by what it asked for and how it ended. Both labels come
    /// from closed sets (methods and routes the daemon defines, error codes, HTTP statuses), never
    /// from what a client typed.
    func count(method: String, outcome: String) {
        Counter(label: "lookaheadd_requests_total", dimensions: [("method", method), ("outcome", outcome)], factory: factory).increment()
    }

    /// The Prometheus text exposition (format 0.0.4), with the gauges and engine totals read now.
    func render(_ s: BatcherStatus, connections: Int, uptime: Double) -> String {
        func gauge(_ name: String, _ value: Double, _ labels: [(String, String)] = []) {
            Gauge(label: "lookaheadd_" + name, dimensions: labels, factory: factory).record(value)
        }
        let t = s.totals
        gauge("num_requests_running", Double(s.activeSessions))
        gauge("num_requests_waiting", Double(s.queuedInteractive + s.queuedBatch))
        gauge("kv_cells", Double(s.kvCellsReserved), [("state", "reserved")])
        gauge("kv_cells", Double(s.kvCellsTotal), [("state", "total")])
        gauge("sequences", Double(s.targetSequencesUsed), [("state", "used")])
        gauge("sequences", Double(s.targetSequencesTotal), [("state", "total")])
        gauge("prefix_cache_cells", Double(s.prefixCache.targetCells), [("model", "target")])
        gauge("prefix_cache_cells", Double(s.prefixCache.draftCells), [("model", "draft")])
        gauge("prefix_cache_sequences", Double(s.prefixCache.targetSequences), [("model", "target")])
        gauge("prefix_cache_sequences", Double(s.prefixCache.draftSequences), [("model", "draft")])
        gauge("engine_threads", Double(s.engineThreads))
        gauge("tokens_per_second", t.tokensPerBusySecond)
        gauge("connections", Double(connections))
        gauge("uptime_seconds", uptime)
        counted.withLock { last in
            func add(_ name: String, _ now: Int, _ before: Int, _ labels: [(String, String)] = []) {
                Counter(label: "lookaheadd_" + name, dimensions: labels, factory: factory).increment(by: now - before)
            }
            add("target_passes_total", t.targetPasses - t.sharedTargetPasses, last.targetPasses - last.sharedTargetPasses, [("shared", "false")])
            add("target_passes_total", t.sharedTargetPasses, last.sharedTargetPasses, [("shared", "true")])
            add("draft_passes_total", t.draftPasses, last.draftPasses)
            add("prefix_cache_queries_total", t.prefixQueriedTokens, last.prefixQueriedTokens)
            add("prefix_cache_hits_total", t.cachedPromptTokens, last.cachedPromptTokens)
            add("sessions_ended_total", t.finished, last.finished, [("outcome", "finished")])
            add("sessions_ended_total", t.cancelled, last.cancelled, [("outcome", "cancelled")])
            add("sessions_ended_total", t.failed, last.failed, [("outcome", "failed")])
            FloatingPointCounter(label: "lookaheadd_engine_busy_seconds_total", factory: factory).increment(by: t.busySeconds - last.busySeconds)
            last = t
        }
        return registry.emitToString()
    }
}
