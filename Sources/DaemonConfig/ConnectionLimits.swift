import LookaheadProtocol

/// What one client connection may hold of the daemon, and how long it may stall it. Every limit
/// has an error a client can read (docs/protocol.md, "Limits").
public struct ConnectionLimits: Sendable, Equatable {
    /// Largest frame either way, in bytes.
    public var maxFrameBytes = Frame.defaultMaxPayload
    /// Connections open at once, from everyone, and from one uid.
    public var maxConnections = 256
    public var maxConnectionsPerUser = 32
    /// Requests one connection may have unanswered.
    public var maxInflightPerConnection = 32
    /// Reply bytes a connection may leave unread before the daemon stops reading its requests.
    public var maxUnsentBytes = 1 << 20
    /// A connection whose unread replies have not drained for this long is closed.
    public var stalledReaderSeconds = 30.0
    /// A frame begun must be complete within this long.
    public var frameTimeoutSeconds = 10.0
    /// A connection with nothing in flight that sends nothing for this long is closed; 0: never.
    public var idleTimeoutSeconds = 600.0

    public init() {}
}
