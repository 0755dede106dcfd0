import Llama
import Lookahead
#if canImport(Glibc)
import Glibc
#endif

/// Who is waiting: interactive asks are admitted before batch-job lines.
public enum Priority: Int, Sendable, Comparable {
    case interactive = 0
    case batch = 1
    public static func < (a: Priority, b: Priority) -> Bool { a.rawValue < b.rawValue }
}

/// What a request's owner hears, on the engine thread (the sink must hand it on quickly).
public enum SessionUpdate: Sendable {
    /// The session got its sequences and its first pass is in this tick.
    case started
    case step(text: String, answer: Bool, fromDraft: Bool)
    case finished(Generation)
    case failed(BatcherError)
}

public enum BatcherError: Error, Sendable, Equatable, CustomStringConvertible {
    case cancelled
    case shuttingDown
    /// The request can never fit the configured sequence or KV budget.
    case tooLarge(String)
    case engine(String)
    /// Asks for something this daemon did not load (a verifier, the draft model).
    case unavailable(String)

    public var description: String {
        switch self {
        case .cancelled: return "cancelled"
        case .shuttingDown: return "the daemon is shutting down"
        case .tooLarge(let m): return m
        case .engine(let m): return "engine failure: \(m)"
        case .unavailable(let m): return m
        }
    }
}

public struct BatcherRequest: Sendable {
    public var prompt: [Token]
    public var config: SessionConfig
    public var priority: Priority
    public var sink: @Sendable (SessionUpdate) -> Void

    public init(prompt: [Token], config: SessionConfig, priority: Priority, sink: @escaping @Sendable (SessionUpdate) -> Void) {
        self.prompt = prompt
        self.config = config
        self.priority = priority
        self.sink = sink
    }
}

public typealias Ticket = UInt64

/// Live figures for `status`, `metrics` and systemd's STATUS= line.
public struct BatcherStatus: Sendable, Equatable {
    public var activeSessions = 0
    public var activeBatchSessions = 0
    public var queuedInteractive = 0
    public var queuedBatch = 0
    public var targetSequencesUsed = 0
    public var targetSequencesTotal = 0
    public var draftSequencesUsed = 0
    public var kvCellsReserved = 0
    public var kvCellsTotal = 0
    public var ticks = 0
    public var targetPasses = 0
    /// Target passes that carried tokens of more than one session: the packing at work.
    public var sharedTargetPasses = 0
    public var maxSessionsInTargetPass = 0
    public var targetPassTokens = 0
    public var draftPasses = 0
    public var generatedTokens = 0
    public var acceptedSteps = 0
    public var rejectedSteps = 0
    public var finished = 0
    public var cancelled = 0
    public var failed = 0
    public var busySeconds = 0.0
    /// Threads the engine's passes use now, and how often the governor changed them.
    public var engineThreads = 0
    public var threadChanges = 0
    public var stopping = false
}

public struct BatcherLimits: Sendable, Equatable {
    public var maxSessions: Int
    public var maxBatchSessions: Int
    public init(maxSessions: Int = 4, maxBatchSessions: Int = 2) {
        self.maxSessions = maxSessions
        self.maxBatchSessions = maxBatchSessions
    }
}

/// The engine thread and its admission queue. Every llama context is used from this one thread;
/// other threads only enqueue, cancel and read figures (under `lock`).
///
/// Each tick packs all live sessions' pending work into one draft pass (per draft round), one
/// target pass and one verify pass (`TickRunner`). Sessions are admitted by priority, then age,
/// while sequence ids and KV cells remain; cancellation frees a session's sequences at the next tick.
public final class Batcher: @unchecked Sendable {
    private let engines: Engines
    private let runner: TickRunner
    private let limits: BatcherLimits
    private let lock = Mutex()
    private let wake = Condition()

    // Guarded by `lock`.
    private var queue: [(ticket: Ticket, request: BatcherRequest)] = []
    private var cancelRequests: Set<Ticket> = []
    private var nextTicket: Ticket = 1
    private var stopping = false
    private var stopped = false
    private var figures = BatcherStatus()

    // Engine thread only.
    private struct Live {
        var ticket: Ticket
        var session: LookaheadSession
        var request: BatcherRequest
        var targetSeqs: [SeqID]
        var draftSeqs: [SeqID]
        var kvCells: Int
        var started: Double
    }
    private var live: [Live] = []
    private var freeTarget: [SeqID]
    private var freeDraft: [SeqID]
    private var kvReserved = 0

    /// Called from the engine loop at least every `heartbeatInterval`: the systemd watchdog beat.
    public var heartbeat: @Sendable () -> Void = {}
    public var heartbeatInterval: Double = 1

    public init(engines: Engines, limits: BatcherLimits) {
        self.engines = engines
        self.limits = limits
        runner = engines.makeRunner()
        let sequences = engines.config.sequences
        freeTarget = (0..<Int32(sequences)).reversed().map { $0 }
        freeDraft = engines.draft == nil ? [] : (0..<Int32(sequences)).reversed().map { $0 }
        figures.targetSequencesTotal = sequences
        figures.kvCellsTotal = engines.target.contextLength
        figures.engineThreads = engines.threadGovernor.threads
    }

    /// KV cells a session may occupy at most: its prompt, its output, and the speculative tail of
    /// every branch (each at most two steps beyond the committed text).
    public static func kvCells(promptTokens: Int, config: SessionConfig) -> Int {
        let branches = config.mode.usesDraft ? config.gamma * config.width : 0
        return promptTokens + config.maxTokens + (branches + 1) * 2 * (config.rules.maxTokens + config.proposalTokens) + 8
    }

    /// Checks that a request could ever be admitted, so it fails now with a reason, not never.
    public func check(promptTokens: Int, config: SessionConfig) throws(BatcherError) {
        let cells = Batcher.kvCells(promptTokens: promptTokens, config: config)
        if cells > engines.target.contextLength {
            throw .tooLarge("prompt (\(promptTokens) tokens) plus max_tokens \(config.maxTokens) and the speculative branches need \(cells) KV cells; the context has \(engines.target.contextLength)")
        }
        if config.targetSequences > engines.config.sequences {
            throw .tooLarge("gamma \(config.gamma) × width \(config.width) needs \(config.targetSequences) sequences; the daemon has \(engines.config.sequences)")
        }
        if let name = config.verifier, engines.verifiers[name] == nil {
            throw .unavailable("verifier '\(name)' is not loaded (this daemon has \(engines.verifiers.keys.sorted().joined(separator: ", ")))")
        }
        if config.mode.usesDraft, engines.draft == nil {
            throw .unavailable("mode \(config.mode.rawValue) needs the draft model, which is not loaded")
        }
    }

    public func submit(_ request: BatcherRequest) throws(BatcherError) -> Ticket {
        try check(promptTokens: request.prompt.count, config: request.config)
        return try lock.withLock { () throws(BatcherError) -> Ticket in
            guard !stopping else { throw .shuttingDown }
            let ticket = nextTicket
            nextTicket += 1
            let at = queue.firstIndex { $0.request.priority > request.priority } ?? queue.count
            queue.insert((ticket, request), at: at)
            wake.signal()
            return ticket
        }
    }

    /// Cancels a queued or running request; its sink hears `.failed(.cancelled)`.
    public func cancel(_ ticket: Ticket) {
        lock.withLock {
            cancelRequests.insert(ticket)
            wake.signal()
        }
    }

    public var status: BatcherStatus { lock.withLock { figures } }

    public func start() {
        engines.target.afterChunk = { [heartbeat] in heartbeat() }
        engines.draft?.afterChunk = { [heartbeat] in heartbeat() }
        spawnThread { [self] in run() }
    }

    /// Stops admitting; lets running sessions finish for up to `grace` seconds, then cancels the
    /// rest and every queued request. Returns when the engine thread has stopped.
    public func shutdown(grace: Double) {
        let deadline = monotonicSeconds() + grace
        lock.withLock {
            stopping = true
            figures.stopping = true
            for (ticket, _) in queue { cancelRequests.insert(ticket) }
            wake.signal()
        }
        var cancelledLive = false
        while !lock.withLock({ stopped }) {
            if !cancelledLive, monotonicSeconds() > deadline {
                cancelledLive = true
                lock.withLock {
                    for ticket in liveTicketsSnapshot { cancelRequests.insert(ticket) }
                    wake.signal()
                }
            }
            usleep(20_000)
        }
    }

    // Written by the engine thread under `lock` for `shutdown` to read.
    private var liveTicketsSnapshot: [Ticket] = []

    // MARK: Engine thread

    private func run() {
        var lastBeat = 0.0
        while true {
            let (admitted, cancels, exit) = takeWork()
            if exit { break }
            for ticket in cancels { cancelLive(ticket) }
            for (ticket, request) in admitted { admit(ticket, request) }

            let now = monotonicSeconds()
            if now - lastBeat >= heartbeatInterval / 2 {
                heartbeat()
                lastBeat = now
            }
            guard !live.isEmpty else { continue }

            let t0 = monotonicSeconds()
            do {
                try runner.tick()
            } catch {
                failAll(BatcherError.engine("\(error)"))
                continue
            }
            engines.governThreads()
            publish(busy: monotonicSeconds() - t0)
        }
        lock.withLock { stopped = true }
    }

    /// Takes the admissible queue head(s) and pending cancels; blocks while there is nothing to do.
    private func takeWork() -> ([(Ticket, BatcherRequest)], [Ticket], Bool) {
        lock.withLock {
            while live.isEmpty, queue.isEmpty, cancelRequests.isEmpty {
                if stopping { return ([], [], true) }
                wake.wait(lock, seconds: heartbeatInterval / 2)
                if live.isEmpty, queue.isEmpty, cancelRequests.isEmpty { return ([], [], false) }
            }
            let cancels = Array(cancelRequests)
            cancelRequests.removeAll()
            // Queued requests that were cancelled never start.
            var dropped: [BatcherRequest] = []
            queue.removeAll { entry in
                if cancels.contains(entry.ticket) { dropped.append(entry.request); return true }
                return false
            }
            for r in dropped { r.sink(.failed(stopping ? .shuttingDown : .cancelled)) }
            var admitted: [(Ticket, BatcherRequest)] = []
            var targetLeft = freeTarget.count, draftLeft = freeDraft.count, kvLeft = engines.target.contextLength - kvReserved
            var sessions = live.count, batchSessions = live.filter { $0.request.priority == .batch }.count
            while let head = queue.first, !stopping {
                let c = head.request.config
                let cells = Batcher.kvCells(promptTokens: head.request.prompt.count, config: c)
                let batchFull = head.request.priority == .batch && batchSessions >= limits.maxBatchSessions
                guard sessions < limits.maxSessions, !batchFull, c.targetSequences <= targetLeft,
                      c.draftSequences <= draftLeft, cells <= kvLeft else { break }
                queue.removeFirst()
                admitted.append((head.ticket, head.request))
                targetLeft -= c.targetSequences
                draftLeft -= c.draftSequences
                kvLeft -= cells
                sessions += 1
                if head.request.priority == .batch { batchSessions += 1 }
            }
            return (admitted, cancels, stopping && queue.isEmpty && live.isEmpty && admitted.isEmpty)
        }
    }

    private func admit(_ ticket: Ticket, _ request: BatcherRequest) {
        let c = request.config
        let targetSeqs = (0..<c.targetSequences).map { _ in freeTarget.removeLast() }
        let draftSeqs = (0..<c.draftSequences).map { _ in freeDraft.removeLast() }
        do {
            let session = try LookaheadSession(prompt: request.prompt, config: c, target: engines.target,
                                               draft: engines.draft, targetSeqs: targetSeqs, draftSeqs: draftSeqs)
            let cells = Batcher.kvCells(promptTokens: request.prompt.count, config: c)
            kvReserved += cells
            live.append(Live(ticket: ticket, session: session, request: request, targetSeqs: targetSeqs,
                             draftSeqs: draftSeqs, kvCells: cells, started: monotonicSeconds()))
            runner.add(session)
            request.sink(.started)
        } catch {
            freeTarget += targetSeqs
            freeDraft += draftSeqs
            request.sink(.failed(.tooLarge("\(error)")))
        }
    }

    private func cancelLive(_ ticket: Ticket) {
        guard let i = live.firstIndex(where: { $0.ticket == ticket }) else { return }
        live[i].session.cancel()
        finish(at: i)
    }

    /// Streams new events, hands finished sessions their result and frees their sequences.
    private func publish(busy: Double) {
        let report = runner.lastReport
        var i = 0
        while i < live.count {
            let l = live[i]
            for event in l.session.takeEvents() {
                if case .step(let text, let answer, let fromDraft) = event {
                    l.request.sink(.step(text: text, answer: answer, fromDraft: fromDraft))
                }
            }
            if l.session.isFinished { finish(at: i) } else { i += 1 }
        }
        lock.withLock {
            figures.ticks += 1
            figures.busySeconds += busy
            if report.targetSessions > 0 {
                figures.targetPasses += 1
                figures.targetPassTokens += report.targetTokens
                if report.targetSessions > 1 { figures.sharedTargetPasses += 1 }
                figures.maxSessionsInTargetPass = max(figures.maxSessionsInTargetPass, report.targetSessions)
            }
            figures.draftPasses += report.draftPasses
            figures.engineThreads = engines.threadGovernor.threads
            figures.threadChanges = engines.threadGovernor.changes
            refreshFigures()
        }
    }

    private func finish(at i: Int) {
        let l = live.remove(at: i)
        l.session.takeEvents().forEach { event in
            if case .step(let text, let answer, let fromDraft) = event {
                l.request.sink(.step(text: text, answer: answer, fromDraft: fromDraft))
            }
        }
        release(l)
        let reason = l.session.finishReason ?? .cancelled
        var stats = l.session.stats
        stats.wallSeconds = monotonicSeconds() - l.started
        stats.generatedTokens = l.session.generatedTokens.count
        lock.withLock {
            figures.generatedTokens += stats.generatedTokens
            figures.acceptedSteps += stats.acceptedDraftSteps
            figures.rejectedSteps += stats.rejectedDraftSteps
            if reason == .cancelled { figures.cancelled += 1 } else { figures.finished += 1 }
            refreshFigures()
        }
        if reason == .cancelled {
            l.request.sink(.failed(stopping ? .shuttingDown : .cancelled))
        } else {
            l.request.sink(.finished(Generation(
                text: engines.target.text.detokenize(l.session.generatedTokens), tokens: l.session.generatedTokens,
                steps: l.session.steps, finishReason: reason, stats: stats)))
        }
    }

    /// Frees a finished or failed session's sequences and its share of the KV budget.
    private func release(_ l: Live) {
        runner.reap()
        freeTarget += l.targetSeqs
        freeDraft += l.draftSeqs
        kvReserved -= l.kvCells
    }

    private func failAll(_ error: BatcherError) {
        while let l = live.first {
            l.session.cancel()
            live.removeFirst()
            release(l)
            lock.withLock { figures.failed += 1 }
            l.request.sink(.failed(error))
        }
        lock.withLock { refreshFigures() }
    }

    /// Under `lock`.
    private func refreshFigures() {
        figures.activeSessions = live.count
        figures.activeBatchSessions = live.filter { $0.request.priority == .batch }.count
        figures.queuedInteractive = queue.filter { $0.request.priority == .interactive }.count
        figures.queuedBatch = queue.count - figures.queuedInteractive
        figures.targetSequencesUsed = figures.targetSequencesTotal - freeTarget.count
        figures.draftSequencesUsed = engines.draft == nil ? 0 : figures.targetSequencesTotal - freeDraft.count
        figures.kvCellsReserved = kvReserved
        liveTicketsSnapshot = live.map(\.ticket)
    }
}
