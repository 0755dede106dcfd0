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
    private var lastFailure: String?
    private let log = Logger(label: "lookaheadd.jobs")

    init(directory: String) { self.directory = directory }

    /// The open store; opening it re-queues the lines a crash left in flight.
    func open() throws(ProtocolError) -> JobStore {
        if let store { return store }
        do {
            // The store makes its own directory 0700; missing parents (~/.local/state) are made
            // here. Were that to fail, the store's own error below names the path.
            try? Server.prepareDirectory(of: directory)
            let opened = try JobStore(directory: directory)
            let requeued = try opened.recoverInFlight()
            store = opened
            recovered()
            log.info("job store open", metadata: ["path": "\(opened.path)", "requeued_lines": "\(requeued)"])
            return opened
        } catch {
            let problem = ProtocolError(.internal, "batch jobs are unavailable: \(error)")
            report(problem.message)
            throw problem
        }
    }

    func close() { store = nil }

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
