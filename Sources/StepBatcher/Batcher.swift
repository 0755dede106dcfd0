import Dispatch
import Llama
import Logging
import Lookahead
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

public struct BatcherRequest: Sendable {
    public var prompt: Prompt
    public var config: SessionConfig
    public var priority: Priority
    /// Who asked (a uid): owners take turns at admission. nil groups the requests of unknown peers.
    public var owner: UInt32?
    public var sink: @Sendable (SessionUpdate) -> Void

    public init(prompt: Prompt, config: SessionConfig, priority: Priority, owner: UInt32?,
                sink: @escaping @Sendable (SessionUpdate) -> Void) {
        self.prompt = prompt
        self.config = config
        self.priority = priority
        self.owner = owner
        self.sink = sink
    }
}

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
    public var prefixCache = PrefixCacheFigures()
    public var totals = SchedulerFigures()
    /// Threads the engine's passes use now, and how often the governor changed them.
    public var engineThreads = 0
    public var threadChanges = 0
    public var stopping = false
}

/// The engine thread and its admission queue. Every llama context is used from this one thread
/// (through the `Scheduler`); other threads only enqueue, cancel and read figures.
///
/// Each tick packs all live sessions' pending work into one draft pass (per draft round), one
/// target pass and one verify pass (`TickRunner`). Sessions are admitted by priority, then age,
/// while sequence ids and KV cells remain; cancellation frees a session's sequences at the next tick.
public final class Batcher: Sendable {
    /// The engine thread's own state. Only that thread touches it once `start` has run; the class
    /// is unchecked because the compiler cannot see that confinement.
    private final class EngineConfined: @unchecked Sendable {
        let scheduler: Scheduler
        init(_ scheduler: Scheduler) { self.scheduler = scheduler }
    }

    /// What other threads share with the engine thread.
    private struct Inbox {
        var queue = AdmissionQueue()
        var cancels: Set<Ticket> = []
        var stopping = false
        /// When shutting down: past this, live sessions are cancelled.
        var deadline = Double.infinity
    }

    public let capacity: Capacity
    private let metrics: RequestMetrics?
    private let engine: EngineConfined
    private let inbox = Mutex(Inbox())
    private let shown: Mutex<BatcherStatus>
    /// Signalled whenever the inbox changes; the idle engine thread waits on it.
    private let wake = DispatchSemaphore(value: 0)
    private let thread = Mutex<EngineThread?>(nil)
    private let heartbeat: Heartbeat
    private let log = Logger(label: "lookaheadd.batcher")

    /// `heartbeat` is called from the engine loop at least every `heartbeat.interval` seconds
    /// (systemd's watchdog).
    /// `metrics`: where each request's figures are recorded as it ends (none when nil).
    public init(scheduler: Scheduler, heartbeat: Heartbeat = Heartbeat(), metrics: RequestMetrics? = nil) {
        self.metrics = metrics
        engine = EngineConfined(scheduler)
        capacity = scheduler.capacity
        self.heartbeat = heartbeat
        var status = BatcherStatus()
        status.targetSequencesTotal = capacity.sequences
        status.kvCellsTotal = capacity.contextLength
        status.engineThreads = scheduler.threads.threads
        shown = Mutex(status)
    }

    public func submit(_ request: BatcherRequest) throws(BatcherError) -> Ticket {
        try capacity.check(promptTokens: request.prompt.cells, config: request.config)
        let request = metrics?.observe(request) ?? request
        let ticket = Ticket.next()
        let maxQueued = capacity.limits.maxQueued
        try inbox.withLock { (inbox) throws(BatcherError) in
            guard !inbox.stopping else { throw .shuttingDown }
            // Batch lines are bounded by the job runner, which submits only what can run soon.
            if request.priority == .interactive, inbox.queue.interactiveCount >= maxQueued {
                throw .busy("\(maxQueued) interactive requests are already queued (max_queued_sessions); retry later")
            }
            inbox.queue.insert(ticket, request)
        }
        wake.signal()
        return ticket
    }

    /// Cancels a queued or running request; its sink hears `.failed(.cancelled)`.
    public func cancel(_ ticket: Ticket) {
        inbox.withLock { _ = $0.cancels.insert(ticket) }
        wake.signal()
    }

    public var status: BatcherStatus { shown.withLock { $0 } }

    public func start() {
        thread.withLock { thread in
            precondition(thread == nil, "the batcher is already running")
            thread = EngineThread { [self] in run() }
        }
    }

    /// Stops admitting and fails what is queued; lets running sessions finish for up to `grace`
    /// seconds, then cancels the rest. Returns when the engine thread has ended.
    public func shutdown(grace: Double) {
        let queued = inbox.withLock { inbox in
            inbox.stopping = true
            inbox.deadline = monotonicSeconds() + grace
            return inbox.queue.removeAll()
        }
        shown.withLock { $0.stopping = true }
        for request in queued { request.sink(.failed(.shuttingDown)) }
        wake.signal()
        thread.withLock { thread in
            defer { thread = nil }
            return thread
        }?.join()
    }

    // MARK: Engine thread

    private func run() {
        let scheduler = engine.scheduler
        var lastBeat = 0.0
        while true {
            let now = monotonicSeconds()
            if now - lastBeat >= heartbeat.interval / 2 {
                heartbeat.beat()
                lastBeat = now
            }
            let (admitted, cancels, dropped, stopping, pastDeadline) = inbox.withLock { inbox in
                let cancels = inbox.cancels
                inbox.cancels.removeAll()
                let dropped = inbox.queue.remove(cancels)
                var room = scheduler.room
                let admitted = inbox.stopping ? [] : inbox.queue.admit(into: &room)
                return (admitted, cancels, dropped, inbox.stopping, now > inbox.deadline)
            }
            // Queued requests that were cancelled never start.
            for request in dropped { request.sink(.failed(.cancelled)) }
            for ticket in cancels { scheduler.cancel(ticket, reason: stopping ? .shuttingDown : .cancelled) }
            if pastDeadline { scheduler.cancelAll(reason: .shuttingDown) }
            for (ticket, r) in admitted {
                scheduler.admit(ticket, prompt: r.prompt, config: r.config, priority: r.priority, sink: r.sink)
            }
            if scheduler.isIdle {
                publish(scheduler)
                if stopping { break }
                _ = wake.wait(timeout: .now() + heartbeat.interval / 2)
                continue
            }
            scheduler.tick()
            publish(scheduler)
        }
        log.debug("engine thread stopped")
    }

    private func publish(_ scheduler: Scheduler) {
        let (interactive, queued) = inbox.withLock { ($0.queue.interactiveCount, $0.queue.count) }
        shown.withLock { s in
            s.activeSessions = scheduler.liveSessions
            s.activeBatchSessions = scheduler.liveBatchSessions
            s.queuedInteractive = interactive
            s.queuedBatch = queued - interactive
            s.targetSequencesUsed = scheduler.targetSequencesUsed
            s.draftSequencesUsed = scheduler.draftSequencesUsed
            s.kvCellsReserved = scheduler.kvCellsReserved
            s.prefixCache = scheduler.prefixCache
            s.totals = scheduler.figures
            s.engineThreads = scheduler.threads.threads
            s.threadChanges = scheduler.threads.changes
        }
    }
}

/// The systemd watchdog's beat, and how often the engine loop must give it.
public struct Heartbeat: Sendable {
    public var interval: Double
    public var beat: @Sendable () -> Void
    public init(interval: Double = 1, beat: @escaping @Sendable () -> Void = {}) {
        self.interval = interval
        self.beat = beat
    }
}

/// A real thread, joined when it is done (never a Swift concurrency pool thread, which blocking
/// decode calls would starve).
final class EngineThread: Sendable {
    private final class Body: @unchecked Sendable {
        // Handed to the new thread once, through pthread_create's argument.
        let run: @Sendable () -> Void
        init(_ run: @escaping @Sendable () -> Void) { self.run = run }
    }
    private let handle: pthread_t

    init(_ body: @escaping @Sendable () -> Void) {
        let box = Unmanaged.passRetained(Body(body)).toOpaque()
        var thread = pthread_t()
        let rc = pthread_create(&thread, nil, { raw in
            Unmanaged<Body>.fromOpaque(raw!).takeRetainedValue().run()
            return nil
        }, box)
        precondition(rc == 0, "pthread_create failed: \(rc)")
        handle = thread
    }

    func join() { pthread_join(handle, nil) }
}
