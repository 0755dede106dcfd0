import DaemonConfig
import Dispatch
import JobStore
import Logging
import Lookahead
import LookaheadProtocol
import OpenAIProtocol
import StepBatcher

/// Batch jobs: drains the JobStore's lines into the batcher at `.batch` priority, at most
/// `max_batch_sessions` at a time, and only inside the drain window unless a job says `now`; and
/// answers the `jobs.*` methods.
///
/// Every store call runs on one serial queue (never on a NIO event loop or a Swift concurrency
/// thread: SQLite commits block on fsync). Callers get their answer through a callback from that
/// queue. A line's result is committed before anything reports it: clients only ever learn of
/// results by reading the store.
///
/// Unchecked: its mutable state is touched only on `queue`, a confinement the compiler cannot see.
public final class JobRunner: @unchecked Sendable {
    public typealias Reply = @Sendable (Result<JSONValue, ProtocolError>) -> Void

    let window: DrainWindow?
    let clock: JobClock
    let maxInputBytes: Int
    private let quota: JobQuota
    private let batcher: Batcher
    private let asks: AskPreparer
    /// The name the target is served under: `model` in the answers of OpenAI lines.
    private let model: String
    private let maxInFlight: Int
    /// A page of `jobs.list` or `jobs.results` stays under half a frame, so the reply always fits.
    private let pageBytes: Int
    private let log = Logger(label: "lookaheadd.jobs")
    private let queue = DispatchQueue(label: "lookaheadd.jobs")
    /// Reading and validating inputs (up to max_job_bytes) happens beside the store, not on its queue.
    private let inputQueue = DispatchQueue(label: "lookaheadd.jobs.input")

    // `queue` only.
    private let keeper: JobStoreKeeper
    private var flights: [LineKey: Flight] = [:]
    private var meter = Throughput()
    private var feeding = false
    private var timer: (any DispatchSourceTimer)?

    /// `model`: the id OpenAI-format answers name the target by (`Methods.servedID`).
    public init(directory: String, batcher: Batcher, asks: AskPreparer, model: String, config: DaemonConfiguration, clock: JobClock) {
        keeper = JobStoreKeeper(directory: directory, clock: clock,
                                retention: config.jobRetentionDays == 0 ? nil : Double(config.jobRetentionDays) * 86400)
        quota = JobQuota(jobs: config.maxJobsPerUser, lines: config.maxJobLinesPerUser, bytes: config.maxJobBytesPerUser)
        self.batcher = batcher
        self.asks = asks
        self.model = model
        self.clock = clock
        window = config.drainWindow
        maxInFlight = config.maxBatchSessions
        maxInputBytes = config.maxJobBytes
        pageBytes = config.maxFrameBytes / 2
    }

    public var directory: String { keeper.directory }

    /// Opens the store (re-queueing the lines a crash left in flight) and starts draining. A store
    /// that cannot be opened is logged, not fatal: `ask` still works, `jobs.*` answer `internal`
    /// naming the path, and every later use tries again.
    public func startFeeding() {
        queue.sync {
            feeding = true
            let timer = DispatchSource.makeTimerSource(queue: queue)
            // The window opens and deadlines pass without anyone calling.
            timer.schedule(deadline: .now() + 1, repeating: 1)
            timer.setEventHandler { [unowned self] in pump() }
            timer.resume()
            self.timer = timer
            pump()
        }
    }

    /// SIGTERM: no new lines start; those in flight run on until the batcher's shutdown ends them.
    public func stopFeeding() {
        queue.sync {
            feeding = false
            timer?.cancel()
            timer = nil
        }
    }

    /// Call after the batcher has stopped: every line it ended has been settled by then (its
    /// update reached `queue` first). What could not be saved goes back to the queue if it can;
    /// `recoverInFlight` at the next start covers the rest.
    public func close() {
        queue.sync {
            for (key, flight) in flights { settle(key, flight.unsaved ?? .released) }
            keeper.close()
        }
    }

    // MARK: - Methods (answered on `queue`)

    func submit(owner: UInt32, source: JobSource, runNow: Bool, deadline: Double?, idempotencyKey: String?,
                reply: @escaping Reply) {
        inputQueue.async { [self] in
            let lines: [ValidatedLine]
            do throws(ProtocolError) {
                lines = try source.lines(owner: owner, maxBytes: maxInputBytes, asks: asks)
            } catch {
                return reply(.failure(error))
            }
            queue.async { [self] in
                reply(Result { () throws(ProtocolError) in
                    let now = clock.now()
                    if let deadline, deadline <= now {
                        throw ProtocolError(.invalidParams, "deadline \(deadline) is not in the future (now \(now))", field: "deadline")
                    }
                    let store = try keeper.open()
                    let submitted = try keeper.storing { () throws(JobStoreError) in
                        try store.submit(owner: owner, lines: lines, runNow: runNow, deadline: deadline, now: now,
                                         idempotencyKey: idempotencyKey, quota: quota)
                    }
                    if !submitted.duplicate {
                        log.info("job submitted", metadata: ["job": "\(submitted.job.id)", "owner_uid": "\(owner)",
                                                             "lines": "\(lines.count)", "now": "\(runNow)"])
                        pump()
                    }
                    var object = JobEncoding.job(submitted.job)
                    object["duplicate"] = .bool(submitted.duplicate)
                    return .object(object)
                })
            }
        }
    }

    /// The requester's jobs after the cursor, newest first, as many as fit `limit` and half a
    /// frame; `next_after` is the cursor of the next page (null on the last).
    func list(requester: UInt32, after: JobCursor?, limit: Int, reply: @escaping Reply) {
        answer(reply) { [self] store throws(JobStoreError) in
            // One more than the page holds, to tell whether another page follows.
            let jobs = try store.list(requester: requester, after: after, limit: limit + 1)
            let page = page(jobs, limit: limit) { .object(JobEncoding.job($0)) }
            return .object(["jobs": .array(page.items),
                            "next_after": page.last.map { .string(JobCursor(after: $0).description) } ?? .null])
        }
    }

    /// The job with its progress and, while it can run, an ETA at the throughput measured so far.
    func get(id: String, requester: UInt32, reply: @escaping Reply) {
        answer(reply) { [self] store throws(JobStoreError) in
            let job = try store.job(id: id, requester: requester)
            var object = JobEncoding.job(job)
            let rates = meter.rates(at: monotonicSeconds())
            let waiting = !job.runNow && !windowIsOpen
            object["eta_seconds"] = waiting ? .null : job.eta(throughputLinesPerSecond: rates?.lines ?? 0).map(JSONValue.double) ?? .null
            object["lines_per_second"] = rates.map { .double($0.lines) } ?? .null
            object["tokens_per_second"] = rates.map { .double($0.tokens) } ?? .null
            return .object(object)
        }
    }

    /// Lines after line `after`, in order, as many as fit `limit` and half a frame, in the job's
    /// format; `next_after` is where the next page starts (null on the last page). The store reads
    /// only this page.
    func results(id: String, requester: UInt32, after: Int, limit: Int, reply: @escaping Reply) {
        answer(reply) { [self] store throws(JobStoreError) in
            let job = try store.job(id: id, requester: requester)
            let lines = try store.results(id: id, requester: requester, after: after, limit: limit + 1)
            let page = page(lines, limit: limit) { JobEncoding.line($0, of: job) }
            return .object(["id": .string(id), "state": .string(job.state.rawValue), "lines": .array(page.items),
                            "next_after": page.last.map { JSONValue($0.lineNo) } ?? .null])
        }
    }

    /// The leading rows that fit one reply: at most `limit`, and within `pageBytes` (the first item
    /// always, or a large one could never be read). A row `encode` turns into nil is passed over
    /// but counts towards `limit`, so a page never reads more than `limit` rows. `last` is the last
    /// row taken when rows were left over, where the next page begins; nil when this page is the last.
    private func page<Row>(_ rows: [Row], limit: Int, _ encode: (Row) -> JSONValue?) -> (items: [JSONValue], last: Row?) {
        var items: [JSONValue] = []
        var bytes = 0
        for (index, row) in rows.enumerated() {
            if index == limit { return (items, rows[index - 1]) }
            guard let item = encode(row) else { continue }
            let size = JSONCodec.encode(item).count
            if !items.isEmpty && bytes + size > pageBytes { return (items, rows[index - 1]) }
            items.append(item)
            bytes += size
        }
        return (items, nil)
    }

    /// Queued lines are cancelled at once; lines in flight are stopped at the engine's next tick
    /// (a line that finishes first keeps its answer). A job already over is returned unchanged.
    func cancel(id: String, requester: UInt32, reply: @escaping Reply) {
        answer(reply) { [self] store throws(JobStoreError) in
            let job: JobRecord
            do throws(JobStoreError) {
                job = try store.cancel(jobID: id, requester: requester, now: clock.now())
                log.info("job cancelled", metadata: ["job": "\(id)", "by_uid": "\(requester)"])
            } catch .alreadyFinished {
                job = try store.job(id: id, requester: requester)
            }
            for (key, flight) in flights where key.job == id { flight.ticket.map(batcher.cancel) }
            keeper.refreshShown()
            return .object(JobEncoding.job(job))
        }
    }

    // MARK: - Status

    /// `status`'s `jobs` and `drain_window` members.
    func statusFields() -> (jobs: JSONValue, drainWindow: JSONValue) {
        let s = keeper.shown.withLock { $0 }
        var jobs: JSONObject = [
            "queued": JSONValue(s.pending.queuedJobs), "in_progress": JSONValue(s.pending.inProgressJobs),
            "lines_queued": JSONValue(s.pending.queuedLines), "lines_in_progress": JSONValue(s.pending.inProgressLines),
        ]
        if let error = s.error { jobs["error"] = .string(error) }
        let drain: JSONValue = window.map { window in
            .object(["open": .bool(window.contains(minuteOfDay: clock.minuteOfDay())),
                     "from": .string(DrainWindow.clock(window.fromMinutes)), "to": .string(DrainWindow.clock(window.toMinutes)),
                     "local_time": .string(DrainWindow.clock(clock.minuteOfDay()))])
        } ?? .null
        return (.object(jobs), drain)
    }

    // MARK: - Draining (on `queue`)

    private var windowIsOpen: Bool { window?.contains(minuteOfDay: clock.minuteOfDay()) ?? true }

    /// Runs `body` with the store on `queue` and replies with its outcome.
    private func answer(_ reply: @escaping Reply, _ body: @escaping @Sendable (JobStore) throws(JobStoreError) -> JSONValue) {
        queue.async { [self] in
            reply(Result { () throws(ProtocolError) in
                let store = try keeper.open()
                return try keeper.storing { () throws(JobStoreError) in try body(store) }
            })
        }
    }

    /// Saves what could not be saved before, then claims lines while there is room.
    private func pump() {
        guard feeding, let store = try? keeper.open() else { return }
        keeper.sweepIfDue()
        for (key, flight) in flights { if let unsaved = flight.unsaved { settle(key, unsaved) } }
        // While the store refuses writes, nothing new starts: its result could not be kept either.
        if !flights.values.contains(where: { $0.unsaved != nil }) {
            do {
                // claimLines also expires overdue jobs, so it runs even without room.
                var claimed = try store.claimLines(limit: max(0, maxInFlight - flights.count), now: clock.now(),
                                                   windowOpen: windowIsOpen)
                while !claimed.isEmpty {
                    for line in claimed { launch(line) }
                    // Lines that failed at once left room behind them.
                    let room = maxInFlight - flights.count
                    claimed = room > 0 ? try store.claimLines(limit: room, now: clock.now(), windowOpen: windowIsOpen) : []
                }
                keeper.recovered()
            } catch {
                keeper.failed(error, "cannot claim batch lines")
            }
        }
        keeper.refreshShown()
    }

    private func launch(_ line: ClaimedLine) {
        let key = LineKey(job: line.jobID, line: line.lineNo)
        if flights.isEmpty { meter.becameBusy(at: monotonicSeconds()) }
        flights[key] = Flight()
        let request: LineAsk
        do {
            request = try line.ask()
        } catch {
            return settle(key, .failed(.object(ProtocolError(.invalidParams, error.message, field: error.field).json)))
        }
        let ask: PreparedAsk
        do {
            ask = try asks.prepare(request.params)
        } catch {
            // Checked at submission; a daemon restarted with another configuration can still refuse it.
            return settle(key, Self.failure(error, request))
        }
        flights[key]?.ask = ask
        flights[key]?.openAI = request.openAI
        let sink: @Sendable (SessionUpdate) -> Void = { [unowned self] update in
            queue.async { self.update(key, update) }
        }
        do {
            flights[key]?.ticket = try batcher.submit(BatcherRequest(
                prompt: ask.prompt, config: ask.config, priority: .batch, owner: line.owner, sink: sink))
        } catch .shuttingDown {
            settle(key, .released)
        } catch {
            settle(key, Self.failure(ProtocolError(error: error, field: "prompt"), request))
        }
    }

    /// A failure as the line's results name it: an OpenAI line's error blames the OpenAI parameter.
    private static func failure(_ error: ProtocolError, _ line: LineAsk) -> Settlement {
        .failed(.object(ProtocolError(error.code, error.message, field: line.field(forNative: error.field)).json))
    }

    private func update(_ key: LineKey, _ update: SessionUpdate) {
        guard let flight = flights[key], let ask = flight.ask else { return }
        switch update {
        case .started:
            flights[key]?.startedAt = clock.now()
            return
        case .step:
            return
        case .finished(let generation):
            let result = JobEncoding.lineResult(generation, ask, startedAt: flight.startedAt,
                                                as: flight.openAI.map { (endpoint: $0.endpoint, model: model, created: clock.now()) })
            settle(key, .done(result, tokens: generation.tokens.count))
        case .failed(.cancelled), .failed(.shuttingDown):
            // Stopped, not answered: back to the queue, or cancelled with its job.
            settle(key, .released)
        case .failed(let error):
            settle(key, .failed(.object(ProtocolError(error: error, field: nil).json)))
        }
        pump()
    }

    /// Commits how a line ended; only then does it leave `flights`. An outcome the store cannot
    /// take (disk full) stays in `flights`, unreported, and `pump` retries it.
    private func settle(_ key: LineKey, _ outcome: Settlement) {
        guard let store = keeper.store else {
            flights[key]?.unsaved = outcome
            return
        }
        let now = clock.now()
        do {
            switch outcome {
            case .done(let result, _): try store.complete(jobID: key.job, lineNo: key.line, result: result, now: now)
            case .failed(let error): try store.fail(jobID: key.job, lineNo: key.line, error: error, now: now)
            case .released: try store.release(jobID: key.job, lineNo: key.line, now: now)
            }
            keeper.recovered()
        } catch .lineNotInProgress(_, _, let state) {
            // The store alone decides what is in flight; it already has this line's end.
            log.warning("line \(key.line) of job \(key.job) was no longer in flight (\(state?.rawValue ?? "missing"))")
        } catch {
            flights[key]?.unsaved = outcome
            return keeper.failed(error, "cannot save line \(key.line) of job \(key.job); kept in memory and retried")
        }
        flights[key] = nil
        switch outcome {
        case .done(_, let tokens): meter.finished(at: monotonicSeconds(), tokens: tokens)
        case .failed: meter.finished(at: monotonicSeconds(), tokens: 0)
        case .released: break
        }
    }
}

private struct LineKey: Hashable {
    var job: String
    var line: Int
}

/// A line handed to the batcher, until the store has its end.
private struct Flight {
    var ask: PreparedAsk?
    /// An OpenAI line's request, whose answer is stored in OpenAI's shape; nil for a native line.
    var openAI: CompletionRequest?
    var ticket: Ticket?
    /// Unix seconds at which the batcher admitted it: `started_at` in its result.
    var startedAt: Double?
    /// Its end, when the store could not take it yet.
    var unsaved: Settlement?
}

private enum Settlement {
    case done(JSONValue, tokens: Int)
    case failed(JSONValue)
    /// Stopped without an answer.
    case released
}
