import Foundation
import LookaheadProtocol
import Synchronization
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// What the fake daemon does in answer to one request, in order.
enum Reply: Sendable {
    case frame(JSONObject)
    /// Raw bytes: half a frame, a bad header.
    case bytes([UInt8])
    /// Hang up on this client.
    case close

    static func step(_ request: Request, _ text: String, phase: String) -> Reply {
        .frame(Event(id: request.id, event: "step", data: ["text": .string(text), "phase": .string(phase), "from_draft": true]).json)
    }

    static func result(_ request: Request, _ result: JSONValue) -> Reply {
        .frame(ResultReply(id: request.id, result: result).json)
    }

    static func error(_ request: Request, _ code: ErrorCode, _ message: String, field: String? = nil) -> Reply {
        .frame(ErrorReply(id: request.id, error: ProtocolError(code, message, field: field)).json)
    }
}

/// A scripted stand-in for lookaheadd on a Unix socket in a fresh temporary directory. A real
/// thread (not a Task: blocking there starves the 2-thread pool) serves one connection after
/// another and answers each request with what `script` returns for it.
final class FakeDaemon: Sendable {
    let path: String
    private let directory: String
    private let listener: Int32
    private let received = Mutex<[Request]>([])
    private let stopping = Atomic<Bool>(false)
    private let stopped = DispatchSemaphore(value: 0)

    /// No test waits this long; a client that hangs is cut off instead of hanging the suite.
    private let givesUpAt = Date().addingTimeInterval(60)

    init(script: @escaping @Sendable (Request) -> [Reply]) throws {
        directory = try makeTemporaryDirectory("lookaheadctl-test")
        path = directory + "/lookaheadd.sock"
        listener = try unixSocket(SOCK_STREAM, boundTo: path)
        try check(listen(listener, 8), "listen \(path)")
        Thread.detachNewThread { [self] in
            serve(script)
            stopped.signal()
        }
    }

    /// Every request received so far, in order.
    var requests: [Request] { received.withLock { $0 } }

    func stop() {
        stopping.store(true, ordering: .relaxed)
        stopped.wait()
        close(listener)
        unlink(path)
        rmdir(directory)
    }

    private func serve(_ script: (Request) -> [Reply]) {
        while let connection = accept() {
            answer(connection, script)
            close(connection)
        }
    }

    private func accept() -> Int32? {
        guard wait(for: listener) else { return nil }
        let connection = Glibc.accept(listener, nil, nil)
        return connection >= 0 ? connection : nil
    }

    /// Until the client hangs up, the script says `.close`, or the daemon stops.
    private func answer(_ connection: Int32, _ script: (Request) -> [Reply]) {
        var decoder = FrameDecoder()
        var buffer = [UInt8](repeating: 0, count: 65536)
        while wait(for: connection) {
            let count = read(connection, &buffer, buffer.count)
            guard count > 0 else { return }
            decoder.feed(buffer[..<count])
            while let payload = try? decoder.next() {
                guard let request = try? Request(json: JSONCodec.decodeObject(payload)) else { return }
                received.withLock { $0.append(request) }
                for reply in script(request) {
                    switch reply {
                    case .frame(let message): writeAll(connection, try! FrameEncoder().encode(message))
                    case .bytes(let bytes): writeAll(connection, bytes)
                    case .close: return
                    }
                }
            }
        }
    }

    /// Polls in short slices so `stop()` and the deadline are noticed.
    private func wait(for fd: Int32) -> Bool {
        while !stopping.load(ordering: .relaxed), Date() < givesUpAt {
            var entry = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            if poll(&entry, 1, 50) > 0 { return true }
        }
        return false
    }

    private func writeAll(_ fd: Int32, _ bytes: [UInt8]) {
        var sent = 0
        while sent < bytes.count {
            let n = bytes[sent...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard n > 0 else { return }
            sent += n
        }
    }
}

/// A socket file nobody listens on, as a daemon that died without cleaning up leaves behind.
func staleSocket() throws -> (path: String, remove: () -> Void) {
    let directory = try makeTemporaryDirectory("lookaheadctl-test")
    let path = directory + "/lookaheadd.sock"
    close(try unixSocket(SOCK_STREAM, boundTo: path))
    return (path, { unlink(path); rmdir(directory) })
}
