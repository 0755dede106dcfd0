import JobStore
import Logging
import LookaheadProtocol
import Synchronization

/// What `status` shows of batch jobs: refreshed on the job queue, read from any thread.
struct JobsShown: Sendable {
    var pending = PendingCounts()
    /// Why the store is failing, while it is.
    var error: String?
}

/// The job store's life on the job queue: opened on first use and again after a failure (a state
/// directory an operator fixes works again without a restart), and each distinct failure logged
/// once, not every second, until a write goes through.
final class JobStoreKeeper {
    let directory: String
    let shown = Mutex(JobsShown())
    private(set) var store: JobStore?
    private let clock: JobClock
    /// Seconds a finished job is kept; nil: forever.
    private let retention: Double?
    /// Unix seconds of the last sweep for jobs past their retention.
    private var lastSweep: Double?
    private var lastFailure: String?
    private let log = Logger(label: "lookaheadd.jobs")

    /// Finished jobs are looked for this often: they are kept for days, so an hour late is nothing.
    static let sweepInterval = 3600.0

    init(directory: String, clock: JobClock, retention: Double?) {
        self.directory = directory
        self.clock = clock
        self.retention = retention
    }

    /// The open store; opening it re-queues the lines a crash left in flight, and fails those
    /// that have had their last attempt.
    func open() throws(ProtocolError) -> JobStore {
        if let store { return store }
        do {
            // The store makes its own directory 0700; missing parents (~/.local/state) are made
            // here. Were that to fail, the store's own error below names the path.
            try? Server.prepareDirectory(of: directory)
            let opened = try JobStore(directory: directory)
            let recovery = try opened.recoverInFlight(now: clock.now())
            store = opened
            recovered()
            log.info("job store open", metadata: ["path": "\(opened.path)", "requeued_lines": "\(recovery.requeued)",
                                                  "abandoned_lines": "\(recovery.abandoned)"])
            if recovery.abandoned > 0 {
                log.warning("\(recovery.abandoned) batch lines failed: each was in flight when the daemon stopped, \(JobStore.maxAttempts) times")
            }
            return opened
        } catch {
            let problem = ProtocolError(.internal, "batch jobs are unavailable: \(error)")
            report(problem.message)
            throw problem
        }
    }

    func close() { store = nil }

    /// Deletes the jobs finished longer ago than the retention, at most once per `sweepInterval`
    /// (or when the clock was set back past the last sweep).
    func sweepIfDue() {
        guard let retention, let store else { return }
        let now = clock.now()
        if let lastSweep, abs(now - lastSweep) < Self.sweepInterval { return }
        lastSweep = now
        do {
            let deleted = try store.deleteFinished(before: now - retention)
            if deleted > 0 { log.info("deleted finished jobs past their retention", metadata: ["jobs": "\(deleted)"]) }
        } catch {
            failed(error, "cannot delete finished jobs")
        }
    }

    /// Runs a store call; a missing or foreign job and a bad submission are the client's errors,
    /// anything else the store's (logged, `internal`).
    func storing<T>(_ body: () throws(JobStoreError) -> T) throws(ProtocolError) -> T {
        do {
            return try body()
        } catch {
            switch error {
            // Another user's job reads exactly like a missing one.
            case .notFound(let id): throw ProtocolError(.notFound, "no job \(id)", field: "id")
            case .invalidSubmission(let message): throw ProtocolError(.invalidParams, message)
            // Busy while the owner's other jobs hold the room; a job that could never fit is too large.
            case .overQuota(_, _, _, let adding, let max):
                throw ProtocolError(adding > max ? .tooLarge : .busy, error.description)
            default:
                failed(error, "job store")
                throw ProtocolError(.internal, "job store: \(error)")
            }
        }
    }

    func failed(_ error: JobStoreError, _ what: String) { report("\(what): \(error)") }

    /// A write went through: whatever failed before is over.
    func recovered() {
        guard lastFailure != nil else { return }
        lastFailure = nil
        shown.withLock { $0.error = nil }
        log.notice("job store writable again", metadata: ["path": "\(directory)"])
    }

    func refreshShown() {
        guard let pending = try? store?.pendingCounts() else { return }
        shown.withLock { $0.pending = pending }
    }

    private func report(_ message: String) {
        shown.withLock { $0.error = message }
        guard message != lastFailure else { return }
        lastFailure = message
        log.error("\(message)")
    }
}
