import Llama
import Logging
import Lookahead
import Synchronization

/// Who is waiting: interactive asks are admitted before batch-job lines.
public enum Priority: Int, Sendable, Comparable {
    case interactive = 0
    case batch = 1
    public static func < (a: Priority, b: Priority) -> Bool { a.rawValue < b.rawValue }
}

/// What a request's owner hears, on the engine thread (the sink must hand it on quickly).
public enum SessionUpdate: Sendable {
    /// The session got its sequences and its first pass is in the next tick.
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
    /// The queue is full; nothing was queued.
    case busy(String)

    public var description: String {
        switch self {
        case .cancelled: return "cancelled"
        case .shuttingDown: return "the daemon is shutting down"
        case .tooLarge(let m): return m
        case .engine(let m): return "engine failure: \(m)"
        case .unavailable(let m): return m
        case .busy(let m): return m
        }
    }
}

/// A request's handle for cancelling it: unique in the process.
public struct Ticket: Hashable, Sendable, CustomStringConvertible {
    public let value: UInt64
    private static let last = Atomic<UInt64>(0)
    public static func next() -> Ticket { Ticket(value: last.add(1, ordering: .relaxed).newValue) }
    public var description: String { "#\(value)" }
}

public struct BatcherLimits: Sendable, Equatable {
    /// Interactive and batch sessions running at once.
    public var maxSessions: Int
    /// Of those, how many may be batch work, so interactive asks always find room.
    public var maxBatchSessions: Int
    /// Interactive requests waiting for admission; more are refused as busy.
    public var maxQueued: Int
    public init(maxSessions: Int = 4, maxBatchSessions: Int = 2, maxQueued: Int = 256) {
        self.maxSessions = maxSessions
        self.maxBatchSessions = maxBatchSessions
        self.maxQueued = maxQueued
    }
}

/// The engines a scheduler drives: llama.cpp's, or scripted ones in tests.
public struct EngineSet {
    public var target: ModelEngine
    public var draft: ModelEngine?
    public var verifiers: [VerifierKind: VerifierChain]
    public var defaultVerifier: VerifierKind
    /// Sequence ids each context has.
    public var sequences: Int
    /// The thread governor's ceiling, and how to move both contexts to a new thread count (nil:
    /// no governor, as for scripted engines).
    public var maxThreads: Int
    public var setThreads: ((Int) -> Void)?

    public init(target: ModelEngine, draft: ModelEngine?, verifiers: [VerifierKind: VerifierChain],
                defaultVerifier: VerifierKind, sequences: Int, maxThreads: Int = 1, setThreads: ((Int) -> Void)? = nil) {
        self.target = target
        self.draft = draft
        self.verifiers = verifiers
        self.defaultVerifier = defaultVerifier
        self.sequences = sequences
        self.maxThreads = maxThreads
        self.setThreads = setThreads
    }
}

/// What the engines can ever hold, read once at start: any thread may check a request against it
/// without touching a llama context.
public struct Capacity: Sendable, Equatable {
    public let contextLength: Int
    public let sequences: Int
    public let verifiers: Set<VerifierKind>
    public let hasDraft: Bool
    public let limits: BatcherLimits

    /// KV cells a session may occupy at most: its prompt, its output, and the speculative tail of
    /// every branch (each at most two steps beyond the committed text).
    public static func kvCells(promptTokens: Int, config: SessionConfig) -> Int {
        let branches = config.mode.usesDraft ? config.gamma * config.width : 0
        return promptTokens + config.maxTokens + (branches + 1) * 2 * (config.rules.maxTokens + config.proposalTokens) + 8
    }

    /// Checks that a request could ever be admitted, so it fails now with a reason, not never.
    public func check(promptTokens: Int, config: SessionConfig) throws(BatcherError) {
        let cells = Capacity.kvCells(promptTokens: promptTokens, config: config)
        if cells > contextLength {
            throw .tooLarge("prompt (\(promptTokens) tokens) plus max_tokens \(config.maxTokens) and the speculative branches need \(cells) KV cells; the context has \(contextLength)")
        }
        if config.targetSequences > sequences {
            throw .tooLarge("gamma \(config.gamma) × width \(config.width) needs \(config.targetSequences) sequences; the daemon has \(sequences)")
        }
        if let kind = config.verifier, !verifiers.contains(kind) {
            throw .unavailable("verifier '\(kind.rawValue)' is not loaded (this daemon has \(verifiers.map(\.rawValue).sorted().joined(separator: ", ")))")
        }
        if config.mode.usesDraft, !hasDraft {
            throw .unavailable("mode \(config.mode.rawValue) needs the draft model, which is not loaded")
        }
    }
}

/// What is free for new sessions: admission takes from it in queue order and stops at the first
/// request that does not fit, so a large request is never overtaken by smaller ones of its priority.
public struct Room: Sendable, Equatable {
    public var sessions: Int
    public var batchSessions: Int
    public var targetSequences: Int
    public var draftSequences: Int
    public var kvCells: Int

    /// Takes what a session of this shape needs; false (and nothing taken) when it does not fit.
    public mutating func take(promptTokens: Int, config: SessionConfig, priority: Priority) -> Bool {
        let cells = Capacity.kvCells(promptTokens: promptTokens, config: config)
        guard sessions > 0, priority == .interactive || batchSessions > 0, config.targetSequences <= targetSequences,
              config.draftSequences <= draftSequences, cells <= kvCells else { return false }
        sessions -= 1
        if priority == .batch { batchSessions -= 1 }
        targetSequences -= config.targetSequences
        draftSequences -= config.draftSequences
        kvCells -= cells
        return true
    }
}

/// Running totals of a scheduler, for `status` and `metrics`.
public struct SchedulerFigures: Sendable, Equatable {
    public init() {}

    /// Tokens generated per second the engine was busy, since start.
    public var tokensPerBusySecond: Double { busySeconds > 0 ? Double(generatedTokens) / busySeconds : 0 }

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
    /// Sessions admitted with the prefix cache in use and their prompt tokens; those that started
    /// from a cached prefix, and the prompt tokens they did not prefill.
    public var prefixLookups = 0
    public var prefixQueriedTokens = 0
    public var prefixHits = 0
    public var cachedPromptTokens = 0
}

/// What the prefix cache holds now, per context.
public struct PrefixCacheFigures: Sendable, Equatable {
    public init() {}
    public var enabled = false
    public var targetSequences = 0
    public var targetCells = 0
    public var draftSequences = 0
    public var draftCells = 0
}

/// The live sessions of one set of engines: their sequence ids and KV budget, the tick that packs
/// them into shared passes, and what their owners hear. Not thread-safe: the thread that owns the
/// engines owns it (the batcher's engine thread, or the caller of `generate`).
public final class Scheduler {
    public let capacity: Capacity
    private let engines: EngineSet
    private let runner: TickRunner
    private let clock: () -> Double
    private let log = Logger(label: "lookaheadd.scheduler")

    private struct Live {
        var ticket: Ticket
        var session: LookaheadSession
        var priority: Priority
        var sink: (SessionUpdate) -> Void
        var targetSeqs: [SeqID]
        var draftSeqs: [SeqID]
        var kvCells: Int
        var started: Double
        var stop: StopScan
        /// The phase and origin of the last step, for text the stop scan held back.
        var lastStep = (answer: false, fromDraft: false)
    }
    private var live: [Live] = []
    private var targetPool: SequencePool
    private var draftPool: SequencePool
    private var kvReserved = 0
    public private(set) var figures = SchedulerFigures()
    public private(set) var threads: ThreadGovernor

    /// `prefixCacheCells`: KV cells finished sessions' prefixes may keep in each context for later
    /// sessions to start from (nil: no prefix cache). Live sessions evict them whenever they need
    /// the cells or sequence ids.
    public init(engines: EngineSet, limits: BatcherLimits = BatcherLimits(), prefixCacheCells: Int? = nil,
                clock: @escaping () -> Double = monotonicSeconds) {
        self.engines = engines
        self.clock = clock
        runner = TickRunner(target: engines.target, draft: engines.draft, verifiers: engines.verifiers,
                            defaultVerifier: engines.defaultVerifier, clock: clock)
        let cacheCells = prefixCacheCells.map { min($0, engines.target.contextLength) }
        targetPool = SequencePool(engine: engines.target, sequences: engines.sequences, cacheCells: cacheCells)
        draftPool = SequencePool(engine: engines.draft, sequences: engines.sequences, cacheCells: cacheCells)
        capacity = Capacity(contextLength: engines.target.contextLength, sequences: engines.sequences,
                            verifiers: Set(engines.verifiers.keys), hasDraft: engines.draft != nil, limits: limits)
        threads = ThreadGovernor(maximum: engines.maxThreads)
    }

    /// Both models' measured pass costs.
    public var costs: EngineCosts { runner.costs }
    public var isIdle: Bool { live.isEmpty }
    public var liveSessions: Int { live.count }
    public var liveBatchSessions: Int { live.filter { $0.priority == .batch }.count }
    /// Sequence ids live sessions hold (cached prefixes hold the rest, or they are free).
    public var targetSequencesUsed: Int { targetPool.liveUsed }
    public var draftSequencesUsed: Int { draftPool.liveUsed }
    public var kvCellsReserved: Int { kvReserved }
    public var prefixCache: PrefixCacheFigures {
        var f = PrefixCacheFigures()
        f.enabled = targetPool.caching
        f.targetSequences = targetPool.cache.count
        f.targetCells = targetPool.cache.cells
        f.draftSequences = draftPool.cache.count
        f.draftCells = draftPool.cache.cells
        return f
    }

    /// What new sessions may take now: cached prefixes count as free, since they give way.
    public var room: Room {
        Room(sessions: capacity.limits.maxSessions - live.count,
             batchSessions: capacity.limits.maxBatchSessions - liveBatchSessions,
             targetSequences: targetPool.available, draftSequences: draftPool.available,
             kvCells: capacity.contextLength - kvReserved)
    }

    /// Starts a session with its own sequence ids and KV share; its sink hears `.started`, or
    /// `.failed` when the session cannot start. The caller has taken its place from `room`.
    /// A prompt that shares a prefix with a cached sequence starts from a copy of its cells.
    public func admit(_ ticket: Ticket, prompt given: Prompt, config: SessionConfig, priority: Priority,
                      sink: @escaping (SessionUpdate) -> Void) {
        precondition(config.targetSequences <= targetPool.available && config.draftSequences <= draftPool.available,
                     "admitted past the free sequences")
        let caching = config.cachePrompt && targetPool.caching
        // What the draft reads, settled once: its cache is looked up, and its session started, with it.
        var prompt = given
        if config.mode.usesDraft, let draft = engines.draft {
            prompt.draft = given.draftTokens(draft: draft.text, target: engines.target.text)
        }
        let draftPrompt = prompt.draft ?? prompt.target
        let targetHit = caching ? targetPool.lookup(prompt.target) : nil
        let draftHit = caching && config.draftSequences > 0 ? draftPool.lookup(draftPrompt) : nil
        let targetSeqs = targetPool.take(config.targetSequences, sparing: targetHit?.seq)
        let draftSeqs = draftPool.take(config.draftSequences, sparing: draftHit?.seq)
        let cachedTarget = targetPool.seed(targetSeqs.prefix(1), from: targetHit, limit: prompt.target.count - 1)
        let cachedDraft = draftPool.seed(draftSeqs.prefix(config.width), from: draftHit, limit: draftPrompt.count - 1)
        // The copies share the cached cells, so the cache may now give up what this session's
        // reservation needs, hits included.
        let cells = Capacity.kvCells(promptTokens: prompt.cells, config: config)
        targetPool.evict(toFit: capacity.contextLength - kvReserved - cells)
        draftPool.evict(toFit: capacity.contextLength - kvReserved - cells)
        do {
            let session = try LookaheadSession(prompt: prompt, config: config, target: engines.target,
                                               draft: engines.draft, targetSeqs: targetSeqs, draftSeqs: draftSeqs,
                                               cached: (cachedTarget, cachedDraft))
            kvReserved += cells
            live.append(Live(ticket: ticket, session: session, priority: priority, sink: sink, targetSeqs: targetSeqs,
                             draftSeqs: draftSeqs, kvCells: cells, started: clock(), stop: StopScan(config.stop)))
            runner.add(session)
            if caching {
                figures.prefixLookups += 1
                figures.prefixQueriedTokens += prompt.target.count
                if cachedTarget > 0 { figures.prefixHits += 1 }
                figures.cachedPromptTokens += cachedTarget
            }
            sink(.started)
        } catch {
            targetPool.giveBack(targetSeqs)
            draftPool.giveBack(draftSeqs)
            sink(.failed(.tooLarge("\(error)")))
        }
    }

    /// Ends a live session now, freeing its sequences; its sink hears `.failed(reason)`. False
    /// when no live session has this ticket.
    @discardableResult
    public func cancel(_ ticket: Ticket, reason: BatcherError = .cancelled) -> Bool {
        guard let i = live.firstIndex(where: { $0.ticket == ticket }) else { return false }
        live[i].session.cancel()
        finish(at: i, cancelled: reason)
        return true
    }

    public func cancelAll(reason: BatcherError) {
        for ticket in live.map(\.ticket) { cancel(ticket, reason: reason) }
    }

    /// One tick over every live session: streams committed steps, hands finished sessions their
    /// result and frees their sequences. An engine failure fails every live session (logged once).
    public func tick() {
        guard !live.isEmpty else { return }
        let t0 = clock()
        let report: PassReport
        do {
            report = try runner.tick()
        } catch {
            log.error("engine failure: every live session fails", metadata: ["error": "\(error)", "sessions": "\(live.count)"])
            failAll(.engine("\(error)"))
            return
        }
        governThreads()
        var i = 0
        while i < live.count {
            publishSteps(at: i)
            if live[i].session.isFinished { finish(at: i, cancelled: .cancelled) } else { i += 1 }
        }
        figures.ticks += 1
        figures.busySeconds += clock() - t0
        if report.targetSessions > 0 {
            figures.targetPasses += 1
            figures.targetPassTokens += report.targetTokens
            if report.targetSessions > 1 { figures.sharedTargetPasses += 1 }
            figures.maxSessionsInTargetPass = max(figures.maxSessionsInTargetPass, report.targetSessions)
        }
        figures.draftPasses += report.draftPasses
    }

    /// Runs one request to completion on this thread: admitted alone, ticked until it ends.
    public func generate(prompt: Prompt, config: SessionConfig,
                         onUpdate: (SessionUpdate) -> Void = { _ in }) throws(BatcherError) -> Generation {
        try capacity.check(promptTokens: prompt.cells, config: config)
        var space = room
        guard space.take(promptTokens: prompt.cells, config: config, priority: .interactive) else {
            throw .tooLarge("another session holds the engines' sequences")
        }
        var outcome: Result<Generation, BatcherError>?
        withoutActuallyEscaping(onUpdate) { onUpdate in
            admit(Ticket.next(), prompt: prompt, config: config, priority: .interactive) { update in
                switch update {
                case .finished(let g): outcome = .success(g)
                case .failed(let e): outcome = .failure(e)
                case .started, .step: break
                }
                onUpdate(update)
            }
            while outcome == nil { tick() }
        }
        return try outcome!.get()
    }

    // MARK: Private

    private func publishSteps(at i: Int) {
        for event in live[i].session.takeEvents() {
            guard case .step(let text, let answer, let fromDraft) = event else { continue }
            let shown = live[i].stop.feed(text, answer: answer)
            live[i].lastStep = (answer, fromDraft)
            if !shown.isEmpty { live[i].sink(.step(text: shown, answer: answer, fromDraft: fromDraft)) }
            if live[i].stop.stopped { live[i].session.stop() }
        }
    }

    /// Reads the CPU counters once per governor interval and moves both contexts when it changes.
    private func governThreads() {
        guard let setThreads = engines.setThreads else { return }
        let now = clock()
        guard threads.isDue(at: now), let sample = CPUSample.read(wall: now), let n = threads.observe(sample) else { return }
        log.info("engine threads changed", metadata: ["threads": "\(n)", "maximum": "\(threads.maximum)"])
        setThreads(n)
    }

    /// A finished session gets its result; a cancelled one hears `reason`.
    private func finish(at i: Int, cancelled reason: BatcherError) {
        publishSteps(at: i)
        var l = live.remove(at: i)
        release(l, keepingPrefixes: true)
        let finishReason = l.session.finishReason ?? .cancelled
        var stats = l.session.stats
        stats.wallSeconds = clock() - l.started
        stats.generatedTokens = l.session.generatedTokens.count
        figures.generatedTokens += stats.generatedTokens
        figures.acceptedSteps += stats.acceptedDraftSteps
        figures.rejectedSteps += stats.rejectedDraftSteps
        if finishReason == .cancelled {
            figures.cancelled += 1
            l.sink(.failed(reason))
        } else {
            figures.finished += 1
            let rest = l.stop.flush()
            if !rest.isEmpty { l.sink(.step(text: rest, answer: l.lastStep.answer, fromDraft: l.lastStep.fromDraft)) }
            let text = l.stop.stopped ? String(decoding: l.stop.published, as: UTF8.self)
                : engines.target.text.detokenize(l.session.generatedTokens)
            l.sink(.finished(Generation(
                text: text, tokens: l.session.generatedTokens,
                steps: l.session.steps, finishReason: finishReason, stats: stats)))
        }
    }

    /// Frees a finished or failed session's sequences and its share of the KV budget; with
    /// `keepingPrefixes` (and the cache on for it), its text's cells join the prefix cache.
    private func release(_ l: Live, keepingPrefixes: Bool) {
        runner.remove(l.session)
        let kept = l.session.releaseSequences(keepingPrefixes: keepingPrefixes && l.session.config.cachePrompt && targetPool.caching)
        kvReserved -= l.kvCells
        targetPool.give(l.targetSeqs, keeping: kept.target)
        draftPool.give(l.draftSeqs, keeping: kept.draft)
    }

    private func failAll(_ error: BatcherError) {
        while let l = live.first {
            l.session.cancel()
            live.removeFirst()
            // A failed pass leaves no text worth keeping.
            release(l, keepingPrefixes: false)
            figures.failed += 1
            l.sink(.failed(error))
        }
    }
}
