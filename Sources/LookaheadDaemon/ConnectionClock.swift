import DaemonConfig
import NIOCore

/// The deadlines a connection of either surface (framed socket, HTTP) runs against, from its
/// limits: a request begun must be finished in `frameTimeoutSeconds`, replies left unread must
/// drain within `stalledReaderSeconds`, and a connection with nothing in flight may stay quiet
/// for `idleTimeoutSeconds`. One timer per connection, set for the nearest of them.
struct ConnectionClock {
    enum Expiry: Equatable {
        case unfinishedRequest
        case stalledReader
        case idle
    }

    let limits: ConnectionLimits
    /// The idle clock runs from the last request or the last answer, whichever came later: a
    /// client that waited a minute for its answer has not been idle for that minute.
    var lastActivity: NIODeadline
    var partialSince: NIODeadline?
    var unwritableSince: NIODeadline?
    private var timer: Scheduled<Void>?
    private var armedFor: NIODeadline?

    init(limits: ConnectionLimits, now: NIODeadline) {
        self.limits = limits
        lastActivity = now
    }

    /// `idle`: the connection has nothing in flight and nothing being read.
    func expiry(at now: NIODeadline, idle: Bool) -> Expiry? {
        if let since = partialSince, since + Self.amount(limits.frameTimeoutSeconds) <= now { return .unfinishedRequest }
        if let since = unwritableSince, since + Self.amount(limits.stalledReaderSeconds) <= now { return .stalledReader }
        if let deadline = idleDeadline(idle: idle), deadline <= now { return .idle }
        return nil
    }

    /// Sets the timer for the nearest deadline, unless one as near is set; `fire` runs on `loop`.
    mutating func arm(on loop: any EventLoop, idle: Bool, fire: @escaping @Sendable () -> Void) {
        let deadlines = [
            partialSince.map { $0 + Self.amount(limits.frameTimeoutSeconds) },
            unwritableSince.map { $0 + Self.amount(limits.stalledReaderSeconds) },
            idleDeadline(idle: idle),
        ]
        guard let next = deadlines.compactMap({ $0 }).min() else { return }
        if let armed = armedFor, armed <= next { return }
        timer?.cancel()
        armedFor = next
        timer = loop.scheduleTask(deadline: next, fire)
    }

    /// The timer fired: the next `arm` sets a new one.
    mutating func fired() {
        timer = nil
        armedFor = nil
    }

    mutating func cancel() {
        timer?.cancel()
        fired()
    }

    private func idleDeadline(idle: Bool) -> NIODeadline? {
        guard idle, partialSince == nil, limits.idleTimeoutSeconds > 0 else { return nil }
        return lastActivity + Self.amount(limits.idleTimeoutSeconds)
    }

    static func amount(_ seconds: Double) -> TimeAmount { .nanoseconds(Int64(seconds * 1e9)) }
}
