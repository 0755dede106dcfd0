import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Throws, naming `call` and errno's text, when a system call returned a negative result.
public func check(_ result: Int32, _ call: String) throws {
    if result < 0 { throw TestFailure("\(call): \(String(cString: strerror(errno)))") }
}

/// Calls `body` with `path` as a sockaddr_un.
public func withUnixAddress<R>(_ path: String, _ body: (UnsafePointer<sockaddr>, socklen_t) throws -> R) rethrows -> R {
    var address = sockaddr_un()
    address.sun_family = sa_family_t(AF_UNIX)
    withUnsafeMutableBytes(of: &address.sun_path) { raw in
        raw.copyBytes(from: path.utf8.prefix(raw.count - 1))
    }
    return try withUnsafePointer(to: &address) {
        try $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { try body($0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
    }
}

/// A Unix socket of `type` bound to `path` (not listening yet).
public func unixSocket(_ type: __socket_type, boundTo path: String) throws -> Int32 {
    let fd = socket(AF_UNIX, Int32(type.rawValue), 0)
    try check(fd, "socket")
    do { try check(withUnixAddress(path) { bind(fd, $0, $1) }, "bind \(path)") } catch { close(fd); throw error }
    return fd
}

/// A stream socket listening in a fresh temporary directory (`directory` says which, for cleanup).
public func listeningUnixSocket(backlog: Int32 = 4) throws -> (fd: Int32, path: String, directory: String) {
    let directory = try makeTemporaryDirectory()
    let path = directory + "/listen.sock"
    let fd = try unixSocket(SOCK_STREAM, boundTo: path)
    try check(listen(fd, backlog), "listen \(path)")
    return (fd, path, directory)
}

/// A stream connection to the socket at `path`, with a receive timeout.
public func connectUnixSocket(_ path: String, receiveTimeout seconds: Int = 60) throws -> Int32 {
    let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
    try check(fd, "socket")
    do { try check(withUnixAddress(path) { connect(fd, $0, $1) }, "connect \(path)") } catch { close(fd); throw error }
    var timeout = timeval(tv_sec: seconds, tv_usec: 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    return fd
}

/// What systemd's end of NOTIFY_SOCKET sees: one datagram per sd_notify call. Bound in a fresh
/// temporary directory of its own unless `path` is given; closed and removed when released.
public final class NotifySocket: @unchecked Sendable {
    public let path: String
    public let fd: Int32
    private let directory: String?

    public init(path: String? = nil) throws {
        directory = path == nil ? try makeTemporaryDirectory("lookaheadd-notify") : nil
        self.path = path ?? directory! + "/notify"
        unlink(self.path)
        fd = try unixSocket(SOCK_DGRAM, boundTo: self.path)
    }

    deinit {
        close(fd)
        unlink(path)
        if let directory { removeTree(directory) }
    }

    /// The next message, nil after `timeout` seconds without one.
    public func receive(timeout: Double = 5) -> String? {
        var tv = timeval(tv_sec: Int(timeout), tv_usec: Int((timeout - Double(Int(timeout))) * 1e6))
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var buffer = [UInt8](repeating: 0, count: 4096)
        let n = recv(fd, &buffer, buffer.count, 0)
        return n < 0 ? nil : String(decoding: buffer[..<n], as: UTF8.self)
    }
}
