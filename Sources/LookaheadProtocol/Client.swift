#if canImport(Glibc)
import Glibc
#endif
import Synchronization

/// Why talking to lookaheadd failed. The first two are about the connection; `rejected` is the
/// daemon's own answer, with the protocol's stable error code.
public enum ClientError: Error, Sendable, Hashable, CustomStringConvertible {
    /// No connection was made: the daemon is not running, its socket is stale, or this user may not use it.
    case unreachable(String)
    /// The connection failed, or lookaheadd closed it, before the answer was complete.
    case disconnected(String)
    /// lookaheadd sent something that is not a frame or message of this protocol.
    case malformedReply(ProtocolError)
    /// lookaheadd answered with an error; so does this client for a request over the frame limit,
    /// which the daemon would refuse the same way.
    case rejected(ProtocolError)

    /// The protocol's error code, when lookaheadd rejected the request.
    public var code: ErrorCode? {
        if case .rejected(let error) = self { return error.code }
        return nil
    }

    public var description: String {
        switch self {
        case .unreachable(let message), .disconnected(let message): return message
        case .malformedReply(let error): return "malformed reply from lookaheadd: \(error.message)"
        case .rejected(let error): return "lookaheadd: \(error)"
        }
    }
}

/// A blocking connection to lookaheadd's Unix socket, for command-line tools. Requests go out with
/// `send` and whatever comes back is read with `next`, in arrival order; `call` does both for the
/// common case of one request at a time. `send` may be called from another thread while one waits
/// in `next`: that is how a request in flight is cancelled.
public final class Client: Sendable {
    public let path: String
    private let socket: Int32
    private let encoder: FrameEncoder
    private let writer = Mutex(())
    private let reader: Mutex<FrameDecoder>
    private let lastID = Atomic<Int64>(0)

    private static let readSize = 64 << 10

    /// `maxPayload` bounds frames both ways, as the daemon's limit does.
    public init(path: String, maxPayload: Int = Frame.defaultMaxPayload) throws(ClientError) {
        socket = try Client.connect(to: path)
        self.path = path
        encoder = FrameEncoder(maxPayload: maxPayload)
        reader = Mutex(FrameDecoder(maxPayload: maxPayload))
    }

    deinit { close(socket) }

    /// An id no earlier request of this client used.
    public func makeID() -> JSONValue { .int(lastID.add(1, ordering: .relaxed).newValue) }

    public func send(_ request: Request) throws(ClientError) {
        let frame: [UInt8]
        do { frame = try encoder.encode(request.json) } catch { throw .rejected(error) }
        try writer.withLock { _ throws(ClientError) in
            var sent = 0
            while sent < frame.count {
                // MSG_NOSIGNAL: a daemon that went away is an error to report, not a SIGPIPE that kills us.
                let n = frame[sent...].withUnsafeBytes { Glibc.send(socket, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                if n >= 0 {
                    sent += n
                } else if errno != EINTR {
                    throw Client.lost(errno)
                }
            }
        }
    }

    /// The next message from lookaheadd, whichever request it answers.
    public func next() throws(ClientError) -> ServerMessage {
        try reader.withLock { decoder throws(ClientError) in
            while true {
                let payload: [UInt8]?
                do throws(ProtocolError) { payload = try decoder.next() } catch { throw .malformedReply(error) }
                if let payload {
                    do throws(ProtocolError) { return try ServerMessage(json: JSONCodec.decodeObject(payload)) } catch {
                        throw .malformedReply(error)
                    }
                }
                try receive(into: &decoder)
            }
        }
    }

    /// Sends `method` with a fresh id and waits for its result, handing its events to `onEvent`.
    public func call(method: String, params: Params = [:], onEvent: (Event) -> Void = { _ in }) throws(ClientError) -> JSONValue {
        try call(Request(id: makeID(), method: method, params: params), onEvent: onEvent)
    }

    /// Sends `request` and waits for its result, handing its events to `onEvent`. Frames for other
    /// requests on this connection (the answer to a `cancel` sent meanwhile) are skipped.
    public func call(_ request: Request, onEvent: (Event) -> Void = { _ in }) throws(ClientError) -> JSONValue {
        try send(request)
        while true {
            switch try next() {
            case .event(let event) where event.id == request.id:
                onEvent(event)
            case .result(let reply) where reply.id == request.id:
                return reply.result
            // Without an id, the error is about the connection itself, which lookaheadd then closes.
            case .error(let reply) where reply.id == request.id || reply.id == nil:
                throw .rejected(reply.error)
            default:
                continue
            }
        }
    }

    private func receive(into decoder: inout FrameDecoder) throws(ClientError) {
        while true {
            let (count, error) = withUnsafeTemporaryAllocation(byteCount: Client.readSize, alignment: 1) { buffer in
                let count = read(socket, buffer.baseAddress, buffer.count)
                if count > 0 { decoder.feed(UnsafeRawBufferPointer(rebasing: buffer[..<count])) }
                return (count, errno)
            }
            if count > 0 { return }
            if count == 0 { throw .disconnected("connection closed by lookaheadd") }
            if error != EINTR { throw Client.lost(error) }
        }
    }

    private static func lost(_ error: Int32) -> ClientError {
        if error == EPIPE || error == ECONNRESET { return .disconnected("connection closed by lookaheadd") }
        return .disconnected("connection to lookaheadd failed: \(describe(error))")
    }

    private static func connect(to path: String) throws(ClientError) -> Int32 {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        let capacity = MemoryLayout.size(ofValue: address.sun_path)
        guard !bytes.isEmpty else { throw .unreachable("no socket path given") }
        guard bytes.count < capacity, !bytes.contains(0) else {
            throw .unreachable("\(path) cannot be a Unix socket path (at most \(capacity - 1) bytes, no NUL)")
        }
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: bytes) }

        let fd = Glibc.socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw .unreachable("cannot create a socket: \(describe(errno))") }
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        guard connected == 0 else {
            let error = errno
            close(fd)
            switch error {
            case ENOENT: throw .unreachable("lookaheadd is not running (no socket at \(path))")
            case ECONNREFUSED: throw .unreachable("lookaheadd refused connection at \(path) (stale socket?)")
            case EACCES, EPERM: throw .unreachable("permission denied for lookaheadd's socket at \(path): \(accessHint(path))")
            default: throw .unreachable("cannot connect to lookaheadd at \(path): \(describe(error))")
            }
        }
        return fd
    }

    /// The system socket is open to one group (`SocketGroup=` in lookaheadd.socket); name it.
    private static func accessHint(_ path: String) -> String {
        var info = stat()
        guard stat(path, &info) == 0 else { return "this user cannot reach its directory" }
        let group = getgrgid(info.st_gid).map { String(cString: $0.pointee.gr_name) } ?? "\(info.st_gid)"
        return "join its group (sudo usermod -aG \(group) $USER, then log in again)"
    }

    private static func describe(_ error: Int32) -> String { String(cString: strerror(error)) }
}
